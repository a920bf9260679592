"""Keep-alive clients and one long-poll against 127.0.0.1, across whatever reload happens meanwhile.

Each of --connections threads keeps one HTTP/1.1 connection and sends GET --path on it with
short random pauses (so that at any moment some connections are idle) for --seconds. A request
on a reused connection that the server closed while it was idle (the close of an old worker
racing the request, before any byte of an answer) is retried once on a new connection, as
HTTP clients do for idempotent requests (RFC 9112, 9.3.1): that is counted in `raced`, not as an
error. Anything else is an error: a status other than 200, a failure on a new connection, a
failed retry. One more connection asks --longpoll-path and records when and how it ended.
Writes READY to --ready once every connection answered once, then the JSON result on stdout.
Runs --seconds, or until the file --stop names exists.
"""

import argparse
import http.client
import json
import os
import random
import threading
import time


def client(args, stats, lock, ready, stop):
    conn, used = None, False
    while not stop.is_set():
        for attempt in (1, 2):
            if conn is None:
                conn, used = http.client.HTTPConnection(args.host, args.port, timeout=10), False
            try:
                conn.request("GET", args.path)
                response = conn.getresponse()
                body = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                conn.close()
                conn = None
                with lock:
                    if used and attempt == 1:
                        stats["raced"] += 1
                        continue
                    stats["errors"].append("%s on a %s connection" % (type(exc).__name__, "reused" if used else "new"))
                break
            except OSError as exc:
                conn.close()
                conn = None
                with lock:
                    stats["errors"].append("%s: %s" % (type(exc).__name__, exc))
                break
            used = True
            with lock:
                stats["requests"] += 1
                if response.status != 200:
                    stats["errors"].append("status %d: %r" % (response.status, body[:80]))
                else:
                    stats["workers"].add(body.split()[-1].decode())
            if response.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
            break
        ready.release()
        time.sleep(random.uniform(0, args.pause))
    if conn is not None:
        conn.close()


def longpoll(args, result):
    conn = http.client.HTTPConnection(args.host, args.port, timeout=args.seconds + 300)
    result["started"] = time.time()
    try:
        conn.request("GET", args.longpoll_path)
        response = conn.getresponse()
        result["status"] = response.status
        result["body"] = response.read().decode("utf-8", "replace")
        result["ended_by"] = "answer"
    except (http.client.RemoteDisconnected, ConnectionResetError) as exc:
        result["ended_by"] = type(exc).__name__
    except OSError as exc:
        result["ended_by"] = "%s: %s" % (type(exc).__name__, exc)
    result["ended"] = time.time()
    conn.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--path", default="/probe/ping")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--pause", type=float, default=0.3)
    parser.add_argument("--longpoll-path", default="/probe/longpoll?seconds=600")
    parser.add_argument("--ready", required=True)
    parser.add_argument("--stop", help="end early once this file exists (--seconds is then the longest run)")
    args = parser.parse_args()
    stats = {"requests": 0, "raced": 0, "errors": [], "workers": set()}
    lock, ready, stop, poll = threading.Lock(), threading.Semaphore(0), threading.Event(), {}
    poller = threading.Thread(target=longpoll, args=(args, poll))
    poller.start()
    threads = [threading.Thread(target=client, args=(args, stats, lock, ready, stop)) for _index in range(args.connections)]
    for thread in threads:
        thread.start()
    for _thread in threads:
        ready.acquire()
    with open(args.ready, "w") as handle:
        handle.write("READY %f\n" % time.time())
    deadline = time.time() + args.seconds
    while time.time() < deadline and not (args.stop and os.path.exists(args.stop)):
        time.sleep(0.1)
    stop.set()
    for thread in threads:
        thread.join()
    poller.join()
    print(json.dumps({"connections": args.connections, "requests": stats["requests"], "raced": stats["raced"],
                      "errors": stats["errors"][:20], "error_count": len(stats["errors"]),
                      "workers": sorted(stats["workers"]), "longpoll": poll}))


if __name__ == "__main__":
    main()
