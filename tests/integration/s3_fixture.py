"""An S3 store for the backup tests: npm's s3rver behind a proxy that checks
every request's AWS Signature V4 with botocore (s3rver checks none), and
counts what passes through.

    with S3Store(tmp_path) as s3:
        url = s3.url("bucket", "prefix")     # s3://bucket/prefix?endpoint=...
        env = s3.env()                        # AWS_* for levee and aws

For GCS with Workload Identity, the store also runs a stand-in for the GCE
metadata server (there is none off Google Cloud) that issues OAuth tokens;
the proxy then accepts "Authorization: Bearer <token>" for tokens it issued
and has not revoked, as GCS's XML API does:

        url = s3.url(scheme="gs")             # gs://levee/backups?endpoint=...
        env = s3.workload_identity_env()      # GCE_METADATA_HOST, no AWS_*
"""
import calendar
import hashlib
import http.client
import http.server
import json
import os
import socket
import subprocess
import threading
import time
import urllib.parse

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
S3RVER = os.path.join(ROOT, "tests", "tools", "node_modules", ".bin", "s3rver")
ACCESS, SECRET = "S3RVER", "S3RVER"


MAX_SKEW_SECONDS = 15 * 60  # S3 refuses a request dated further from its clock (RequestTimeTooSkewed)


def check_signature(method, raw_path, headers, body, now=None):
    """None when the request is signed right with (ACCESS, SECRET), else why
    not. As strict as S3 for what levee claims: the payload is signed (never
    UNSIGNED-PAYLOAD), every x-amz-* header sent is signed, and the date is
    within 15 minutes of ours."""
    auth = headers.get("Authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "no SigV4 Authorization header"
    fields = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    access, day, region, service, term = fields["Credential"].split("/")
    if access != ACCESS:
        return "unknown access key " + access
    amz_date = headers.get("X-Amz-Date", "")
    if not amz_date.startswith(day) or service != "s3" or term != "aws4_request":
        return "bad credential scope " + fields["Credential"]
    try:
        sent = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        return "bad X-Amz-Date " + amz_date
    if abs((now or time.time()) - sent) > MAX_SKEW_SECONDS:
        return "RequestTimeTooSkewed: X-Amz-Date %s is more than 15 minutes from the server's clock" % amz_date
    payload = headers.get("X-Amz-Content-SHA256", "")
    if payload == "UNSIGNED-PAYLOAD":
        return "UNSIGNED-PAYLOAD: levee signs every payload"
    if payload != hashlib.sha256(body).hexdigest():
        return "x-amz-content-sha256 does not match the body"
    signed = fields["SignedHeaders"].split(";")
    sent_amz = {h.lower() for h in headers.keys() if h.lower().startswith("x-amz-")}
    for must in {"host", "x-amz-date", "x-amz-content-sha256"} | sent_amz:
        if must not in signed:
            return "header %s is not signed" % must
    req = AWSRequest(method=method, url="http://%s%s" % (headers["Host"], raw_path), data=body,
                     headers={h: headers[h] for h in signed})
    req.context["timestamp"] = amz_date
    signer = S3SigV4Auth(Credentials(ACCESS, SECRET), "s3", region)
    canonical = signer.canonical_request(req)
    expected = signer.signature(signer.string_to_sign(req, canonical), req)
    if expected != fields["Signature"]:
        return "SignatureDoesNotMatch (botocore's canonical request:\n%s)" % canonical
    return None


class S3Store:
    def __init__(self, tmp_dir, buckets=("levee",)):
        self.dir = os.path.join(tmp_dir, "s3rver")
        os.makedirs(self.dir, exist_ok=True)
        self.s3rver_port = free_port()
        self.buckets = buckets
        self.lock = threading.Lock()
        self.requests = []  # (method, path, status, body bytes)
        self.rejected = []  # reasons
        self.fail_next = 0  # answer this many requests with 503 (retries)
        self.allow_object_puts = None  # when set, object PUTs past this many hang (a backup to kill)
        self.object_puts_started = 0
        self.object_put_delay = 0.0  # seconds each object PUT is held (to make parallel uploads overlap)
        self.object_puts_in_flight = 0
        self.max_object_puts_in_flight = 0
        self.tokens_issued = 0
        self.valid_tokens = set()
        self.bearer_accepted = 0  # requests let through on a bearer token
        self.bearer_refused = 0
        self.aborted_requests = 0  # requests whose client hung up before sending the whole body
        self.metadata_identity = True  # False: the metadata server answers 404 (no Workload Identity)

    def __enter__(self):
        args = [S3RVER, "-d", self.dir, "-p", str(self.s3rver_port), "-a", "127.0.0.1", "--silent"]
        for b in self.buckets:
            args += ["--configure-bucket", b]
        env = dict(os.environ, NODE_OPTIONS="--openssl-legacy-provider")
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.s3rver_port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("s3rver did not start: %s" % self.proc.stderr.read())
                time.sleep(0.1)  # poll until s3rver listens (deadline above)
        store = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def handle_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                if len(body) < n:
                    # The client went away mid-body (a test killed it): like S3, never
                    # act on a partial request, and it is not a signature failure.
                    with store.lock:
                        store.aborted_requests += 1
                    self.close_connection = True
                    return
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Bearer "):
                    with store.lock:
                        valid = auth[len("Bearer "):] in store.valid_tokens
                    with store.lock:
                        if valid:
                            store.bearer_accepted += 1
                        else:
                            store.bearer_refused += 1
                    if not valid:
                        return self.reply(401, b"<Error><Code>AuthenticationRequired</Code>"
                                               b"<Message>Invalid Credentials</Message></Error>")
                    why = None
                    del self.headers["Authorization"]  # s3rver serves anonymous requests
                else:
                    why = check_signature(self.command, self.path, self.headers, body)
                if why is None and store.fail_next > 0:
                    with store.lock:
                        store.fail_next -= 1
                    return self.reply(503, b"<Error><Code>SlowDown</Code><Message>injected</Message></Error>")
                if why is not None:
                    with store.lock:
                        store.rejected.append("%s %s: %s" % (self.command, self.path, why))
                    return self.reply(403, ("<Error><Code>SignatureDoesNotMatch</Code><Message>%s</Message></Error>"
                                            % why.split("\n")[0]).encode())
                if self.command == "PUT" and "/objects/" in self.path:
                    with store.lock:
                        store.object_puts_started += 1
                        n = store.object_puts_started
                    while store.allow_object_puts is not None and n > store.allow_object_puts:
                        time.sleep(0.05)  # poll: held until the test lifts the limit
                is_object_put = self.command == "PUT" and "/objects/" in self.path
                if is_object_put:
                    with store.lock:
                        store.object_puts_in_flight += 1
                        store.max_object_puts_in_flight = max(store.max_object_puts_in_flight,
                                                              store.object_puts_in_flight)
                    time.sleep(store.object_put_delay)  # a slow store: uploads in parallel overlap
                conn = http.client.HTTPConnection("127.0.0.1", store.s3rver_port, timeout=60)
                fwd = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "expect")}
                conn.request(self.command, self.path, body=body if (body or self.command in ("PUT", "POST")) else None,
                             headers=fwd)
                resp = conn.getresponse()
                data = resp.read()
                with store.lock:
                    store.requests.append((self.command, self.path, resp.status, len(body)))
                    if is_object_put:
                        store.object_puts_in_flight -= 1
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)) if self.command != "HEAD" else
                                 resp.getheader("Content-Length", "0"))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            def reply(self, status, data):
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

        class Metadata(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path != "/computeMetadata/v1/instance/service-accounts/default/token":
                    return self.answer(404, b"not found")
                if self.headers.get("Metadata-Flavor") != "Google":
                    return self.answer(403, b"Missing Metadata-Flavor:Google header")
                if not store.metadata_identity:
                    return self.answer(404, b"service account not found")
                with store.lock:
                    store.tokens_issued += 1
                    token = "ya29.levee-test-%d" % store.tokens_issued
                    store.valid_tokens.add(token)
                self.answer(200, json.dumps({"access_token": token, "expires_in": 3599,
                                             "token_type": "Bearer"}).encode())

            def answer(self, status, data):
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.metadata = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Metadata)
        self.metadata.daemon_threads = True
        threading.Thread(target=self.metadata.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.allow_object_puts = None
        self.server.shutdown()
        self.server.server_close()
        self.metadata.shutdown()
        self.metadata.server_close()
        self.proc.terminate()
        self.proc.wait(timeout=10)

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def url(self, bucket="levee", prefix="backups", scheme="s3"):
        return "%s://%s/%s?endpoint=%s&path_style=true" % (scheme, bucket, prefix,
                                                          urllib.parse.quote(self.endpoint, safe=":/"))

    def workload_identity_env(self):
        """No HMAC key anywhere; the metadata server at GCE_METADATA_HOST."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(GCE_METADATA_HOST="127.0.0.1:%d" % self.metadata.server_address[1],
                   AWS_SHARED_CREDENTIALS_FILE="/nonexistent/levee-test-credentials")
        return env

    def revoke_tokens(self):
        with self.lock:
            self.valid_tokens.clear()


    def env(self, secret=SECRET):
        return dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS, AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION="us-east-1",
                    AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")

    def put_bytes(self):
        """Bytes of object data PUT so far (single and multipart)."""
        with self.lock:
            return sum(n for m, p, st, n in self.requests if m == "PUT" and "/objects/" in p and st == 200)

    def count(self, method, fragment):
        with self.lock:
            return sum(1 for m, p, st, n in self.requests if m == method and fragment in p)

    def aws(self, *args):
        """Debian's aws CLI against the store (through the verifying proxy)."""
        out = subprocess.run(["/usr/bin/aws", "--endpoint-url", self.endpoint] + list(args), env=self.env(),
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout
