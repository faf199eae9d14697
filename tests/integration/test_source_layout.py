"""The source tree keeps the layering docs/architecture.md draws: its "Map
of src/" table names every folder of src/ and what each may include; every
#include and every library link must run down that table, and the table
itself must be a layering (no cycle)."""
import os
import re

from conftest import ROOT

SRC = os.path.join(ROOT, "src")
DOC = os.path.join(ROOT, "docs", "architecture.md")


def layer_table(text=None):
    """{folder: set of folders it may include} from the map in architecture.md."""
    text = text if text is not None else open(DOC).read()
    section = text.split("## Map of `src/`", 1)[1].split("\n## ", 1)[0]
    table = {}
    for m in re.finditer(r"^\| `([a-z_]+)/` \| [^|]+ \| ([^|]+) \|$", section, re.M):
        allowed = m.group(2).strip()
        table[m.group(1)] = set() if allowed == "—" else {a.strip() for a in allowed.split(",")}
    return table


def src_folders(src=SRC):
    return {d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d))}


def upward_includes(table, src=SRC):
    """(file, included header) for every project include its folder may not make."""
    bad = []
    for folder in sorted(src_folders(src)):
        for name in sorted(os.listdir(os.path.join(src, folder))):
            path = os.path.join(src, folder, name)
            for line in open(path, errors="replace"):
                m = re.match(r'\s*#\s*include\s+"([a-z_]+)/[^"]+"', line)
                if m and m.group(1) != folder and m.group(1) not in table.get(folder, set()):
                    bad.append((f"{folder}/{name}", m.group(0).strip()))
    return bad


def library_links(cmake_text):
    """{folder: set of folders whose libraries its library links} from CMakeLists.txt."""
    links = {}
    for m in re.finditer(r"target_link_libraries\((levee(?:_[a-z]+)?)\s+(?:PUBLIC|PRIVATE)\s+([^)]*)\)", cmake_text):
        target = m.group(1)
        folder = "cli" if target == "levee" else target[len("levee_"):]
        links[folder] = {t[len("levee_"):] for t in m.group(2).split() if t.startswith("levee_")}
    return links


def transitive(table, folder, seen=None):
    seen = set() if seen is None else seen
    for dep in table.get(folder, ()):
        if dep not in seen:
            seen.add(dep)
            transitive(table, dep, seen)
    return seen


def test_the_map_names_every_folder_of_src():
    table = layer_table()
    assert table, "docs/architecture.md has no 'Map of src/' table"
    assert set(table) == src_folders(), (
        f"folders without a row: {sorted(src_folders() - set(table))}; "
        f"rows without a folder: {sorted(set(table) - src_folders())}")
    for folder, allowed in table.items():
        assert allowed <= set(table), f"{folder} may include unknown folders {allowed - set(table)}"


def test_the_map_is_a_layering():
    table = layer_table()
    for folder in table:
        assert folder not in transitive(table, folder), f"{folder} depends on itself through {table[folder]}"


def test_every_include_runs_down_the_map():
    bad = upward_includes(layer_table())
    assert not bad, "includes the map in docs/architecture.md does not allow:\n" + "\n".join(
        f"  {f}: {inc}" for f, inc in bad)


def test_every_library_links_only_what_is_below_it():
    table = layer_table()
    links = library_links(open(os.path.join(ROOT, "CMakeLists.txt")).read())
    assert set(links) >= set(table) - {"resp", "observe"} - {f for f in table if not table[f]}, links
    for folder, deps in links.items():
        if folder not in table:
            continue  # unit tests, benchmarks, fuzz targets link what they test
        assert deps <= table[folder], f"levee_{folder} links {sorted(deps - table[folder])}, above it in the map"


def test_the_check_catches_an_upward_include(tmp_path):
    """Not a no-op: a storage file including a commands header is found,
    as is a folder the map does not name."""
    table = layer_table()
    for folder in ("storage", "commands", "newthing"):
        (tmp_path / folder).mkdir()
    (tmp_path / "storage" / "x.cc").write_text('#include "storage/y.h"\n#include "commands/command.h"\n')
    (tmp_path / "commands" / "z.cc").write_text('#include "storage/engine.h"\n')
    assert upward_includes(table, str(tmp_path)) == [("storage/x.cc", '#include "commands/command.h"')]
    assert src_folders(str(tmp_path)) - set(table) == {"newthing"}
    cyclic = dict(table, wal={"common", "storage"})
    assert "wal" in transitive(cyclic, "wal")
    assert library_links("target_link_libraries(levee_wal PUBLIC levee_common levee_storage leveldb)") == {
        "wal": {"common", "storage"}}
