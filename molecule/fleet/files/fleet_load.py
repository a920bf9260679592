"""Steady HTTP load against this host's own application on loopback, bounded in time and count.

  python3 fleet_load.py PORT STOP_FILE LOG_FILE MAX_SECONDS MAX_COUNT INTERVAL

One new connection per request (as a client behind a load balancer would open), each with a
5 second timeout. Stops when STOP_FILE exists, after MAX_SECONDS or after MAX_COUNT requests.
Writes one line per request to LOG_FILE (seconds since start, status or "error", body) and
prints a JSON summary on exit: requests, statuses, errors, releases seen in order of first
appearance, and the bodies that did not name a release (first ones only).
"""

import http.client
import json
import os
import re
import sys
import time

BODY = re.compile(r"^app (v\d+) \(release (v\d+), worker \d+\)$")


def main(port, stop_file, log_file, max_seconds, max_count, interval):
    started = time.monotonic()
    summary = {"requests": 0, "statuses": {}, "errors": 0, "error_samples": [],
               "releases": {}, "release_order": [], "unexpected": [], "unexpected_count": 0}
    with open(log_file, "w") as log:
        while (summary["requests"] < max_count and time.monotonic() - started < max_seconds
               and not os.path.exists(stop_file)):
            summary["requests"] += 1
            at = time.monotonic() - started
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                connection.request("GET", "/")
                response = connection.getresponse()
                status, body = str(response.status), response.read().decode("utf-8", "replace").strip()
            except (OSError, http.client.HTTPException) as error:
                status, body = "error", "%s: %s" % (type(error).__name__, error)
            finally:
                connection.close()
            log.write("%.3f\t%s\t%s\n" % (at, status, body))
            if status == "error":
                summary["errors"] += 1
                summary["error_samples"] = (summary["error_samples"] + [body])[:5]
            else:
                summary["statuses"][status] = summary["statuses"].get(status, 0) + 1
                match = BODY.match(body)
                # A release counts only when the text and the id agree (v1 serves "app v1").
                if status == "200" and match and match.group(1) == match.group(2):
                    release = match.group(2)
                    summary["releases"][release] = summary["releases"].get(release, 0) + 1
                    if release not in summary["release_order"]:
                        summary["release_order"].append(release)
                else:
                    summary["unexpected_count"] += 1
                    summary["unexpected"] = (summary["unexpected"] + ["%s %s" % (status, body[:200])])[:5]
            time.sleep(interval)
    summary["seconds"] = round(time.monotonic() - started, 1)
    summary["stopped_by"] = "stop file" if os.path.exists(stop_file) else "limit"
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]))
