#!/usr/bin/env python3
"""Concurrent streaming load against an OpenAI-compatible server (hearth serve, llama-server),
loopback only, bounded: N clients at once, each one chat completion of at most MAX tokens,
greedy. Prints completed streams, most in flight and aggregate generated tokens per second.

    python3 scripts/serve-load.py http://127.0.0.1:8080 [--clients 64] [--max-tokens 32]

Standard library only, so it runs anywhere; tokens are counted from each stream's usage chunk
(stream_options.include_usage) or, without one, as content chunks.
"""

import argparse
import http.client
import json
import threading
import time
import urllib.parse

PROMPTS = ["Name a color.", "Name an animal.", "What is 3+4?", "Say a greeting.",
           "Name a fruit.", "Name a country.", "Write one word about the sea.", "Count to three."]


def one(url, i, max_tokens, state):
    u = urllib.parse.urlparse(url)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("loopback only")
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    body = json.dumps({
        "model": "m", "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
        "max_tokens": max_tokens, "temperature": 0, "stream": True,
        "stream_options": {"include_usage": True},
    })
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    with state["lock"]:
        state["open"] += 1
        state["most"] = max(state["most"], state["open"])
    tokens, chunks, done = None, 0, False
    for raw in resp:
        line = raw.decode().strip()
        if not line.startswith("data: "):
            continue
        data = line[6:]
        if data == "[DONE]":
            done = True
            break
        ev = json.loads(data)
        if ev.get("usage"):
            tokens = ev["usage"]["completion_tokens"]
        for ch in ev.get("choices", []):
            if ch.get("delta", {}).get("content"):
                chunks += 1
    with state["lock"]:
        state["open"] -= 1
        state["done"] += done
        state["tokens"] += tokens if tokens is not None else chunks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=32)
    a = ap.parse_args()
    state = {"lock": threading.Lock(), "open": 0, "most": 0, "done": 0, "tokens": 0}
    threads = [threading.Thread(target=one, args=(a.url, i, a.max_tokens, state)) for i in range(a.clients)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - t0
    print(f"{state['done']}/{a.clients} streams complete, up to {state['most']} in flight, "
          f"{state['tokens']} tokens in {wall:.2f} s: {state['tokens'] / wall:.1f} tokens/s aggregate")


if __name__ == "__main__":
    main()
