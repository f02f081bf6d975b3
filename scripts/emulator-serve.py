"""moto's server on a free loopback port, for as long as stdin stays open.

Prints `listening on http://127.0.0.1:PORT` once it answers, then waits for
its standard input to close (its parent exited, or `scripts/emulator stop`)
and stops the server. Requests are not authenticated (moto's default).
"""

import logging
import socket
import sys
import urllib.request

from moto.moto_api._internal.responses import MotoAPIResponse
from moto.server import ThreadedMotoServer


def model_data(self, request, full_url, headers):
    """moto's `/moto-api/data.json`, which tests read to learn the secret IAM
    issued for each key, minus its failure on any deleted IAM user: moto
    keeps every model instance ever made, and a deleted user's attributes
    raise NoSuchEntity, which the original does not catch (one deleted
    user made the endpoint answer 500 for good)."""
    import json

    from moto.core.model_instances import model_data as models_by_service

    # A new model class registered by another request meanwhile changes the
    # dictionaries walked here: walk them again.
    for _ in range(5):
        try:
            # Each value is serialised as it is read: a value another request
            # changes meanwhile cannot break the answer as a whole.
            services = []
            for service in sorted(models_by_service):
                models = models_by_service[service]
                entries = []
                for name in sorted(models):
                    instances = []
                    for instance in list(models[name].instances_tracked):
                        fields = []
                        for attr in dir(instance):
                            if attr.startswith("_"):
                                continue
                            try:
                                fields.append(f"{json.dumps(attr)}: {json.dumps(getattr(instance, attr))}")
                            except Exception:  # noqa: BLE001 - any attribute may fail
                                continue
                        instances.append("{" + ", ".join(fields) + "}")
                    entries.append(f"{json.dumps(name)}: [" + ", ".join(instances) + "]")
                services.append(f"{json.dumps(service)}: {{" + ", ".join(entries) + "}")
            body = "{" + ", ".join(services) + "}"
            break
        except RuntimeError:
            continue
    return 200, {"Content-Type": "application/javascript"}, body


MotoAPIResponse.model_data = model_data
# The routes bind a method of an instance made at import: rebind it too.
from moto.moto_api._internal import urls as moto_api_urls  # noqa: E402

moto_api_urls.url_paths["{0}/moto-api/data.json"] = model_data.__get__(
    moto_api_urls.response_instance
)


def backdate(request, full_url, headers):
    """Test seam, `/moto-api/rekey/backdate?account=A&path=P&seconds=N`:
    makes every access key of the IAM users under path P (of account A) N
    seconds older, so that a test's seeded keys are due at once instead of
    after a real wait (ListAccessKeys and the credential report both show
    the new age). Keys created later are not touched."""
    from datetime import timedelta
    from urllib.parse import parse_qs, urlparse

    from moto.iam.models import iam_backends

    query = parse_qs(urlparse(full_url).query)
    account, path = query["account"][0], query["path"][0]
    seconds = int(query["seconds"][0])
    for user in list(iam_backends[account]["global"].users.values()):
        if user.path.startswith(path):
            for key in user.access_keys:
                key.create_date -= timedelta(seconds=seconds)
    return 200, {"Content-Type": "text/plain"}, "backdated"


moto_api_urls.url_paths["{0}/moto-api/rekey/backdate"] = backdate


def last_used(request, full_url, headers):
    """Test seam, `/moto-api/rekey/last-used?account=A&key=K&seconds=N&service=S&region=R`:
    says that access key K (of account A) was last used N seconds ago,
    by service S in region R, as IAM would after a real call; the
    credential report and GetAccessKeyLastUsed both show it."""
    from datetime import timedelta
    from urllib.parse import parse_qs, urlparse

    from moto.core.utils import utcnow
    from moto.iam.models import AccessKeyLastUsed, iam_backends

    query = parse_qs(urlparse(full_url).query)
    account, key = query["account"][0], query["key"][0]
    seconds = int(query["seconds"][0])
    found = iam_backends[account]["global"].access_keys.get(key)
    if found is None:
        return 404, {"Content-Type": "text/plain"}, "no such key"
    found.last_used = AccessKeyLastUsed(
        timestamp=utcnow() - timedelta(seconds=seconds),
        service=query.get("service", ["iam"])[0],
        region=query.get("region", ["us-east-1"])[0],
    )
    return 200, {"Content-Type": "text/plain"}, "used"


moto_api_urls.url_paths["{0}/moto-api/rekey/last-used"] = last_used


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    # One log line per request would drown the test output.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=10).read()
    print(f"listening on {endpoint}", flush=True)
    try:
        while sys.stdin.read(65536):
            pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
