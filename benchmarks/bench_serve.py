#!/usr/bin/env python
"""Load `gru-serve`: the same held-out French sentences sent to `POST /translate`, one per request, by one client
one at a time and by 32 concurrent clients; throughput, p50 and p99 latency, failed requests, and the batches the
server formed.

    python benchmarks/bench_serve.py runs/fr-en [--pairs_file ../shared/data/eng-fra.txt] [--clients 32]

The sentences are the default split's held-out sources (its 939 test pairs, then validation ones, 1,000 in all),
the inputs a default-size model (README command 1) was trained for. Everything stays on the loopback; the run is
bounded in count (`--num_sentences`) and time (`--max_seconds` per run). For the lone client's latency, the
bound is one in-process `translate()` call of the same sentence (the server's work) plus the HTTP round trip of
`GET /languages` (the server's overhead without the model): both are measured here too, their p50 reported
beside the lone client's. The clients run in this process (threads), so on a 2-core machine they share the
cores with the server. Prints a table and writes `bench_serve.json` here.
"""

import argparse
import concurrent.futures
import contextlib
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "shared", "data", "eng-fra.txt")
sys.path.insert(0, os.path.join(HERE, ".."))

from data_scripts.prepare_tatoeba import prepare_tatoeba  # noqa: E402
from modeling_gru_seq2seq.loading import load_model_and_tokenizer  # noqa: E402
from modeling_gru_seq2seq.translate import translate  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a trained model directory (run_translation.py's --output_dir)")
    parser.add_argument("--pairs_file", default=DATA, help="English<TAB>French pairs (the model's training file)")
    parser.add_argument("--num_sentences", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--max_seconds", type=float, default=900, help="per run: stop sending after this long")
    parser.add_argument("--port", type=int, default=7871)
    parser.add_argument("--output", default=os.path.join(HERE, "bench_serve.json"))
    return parser.parse_args(argv)


def held_out_sources(pairs_file: str, count: int) -> list[str]:
    with contextlib.redirect_stdout(io.StringIO()):
        dataset = prepare_tatoeba(pairs_file).dataset
    pairs = list(dataset["test"]["translation"]) + list(dataset["validation"]["translation"])
    return [pair["fr"] for pair in pairs[:count]]


def post(url: str, sentence: str) -> tuple[float, str | None]:
    """`(seconds, translation or None when the request failed)`."""
    body = json.dumps({"q": sentence, "source": "fr", "target": "en"}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            text = json.loads(answer.read())["translatedText"]
    except Exception:
        return time.perf_counter() - start, None
    return time.perf_counter() - start, text


def load(url: str, sentences: list[str], clients: int, max_seconds: float) -> dict:
    """Send every sentence once, from `clients` threads each taking the next one; latencies and throughput."""
    answers: list = [None] * len(sentences)
    latencies = [0.0] * len(sentences)
    next_index, lock = iter(range(len(sentences))), threading.Lock()
    deadline = time.monotonic() + max_seconds

    def client():
        while time.monotonic() < deadline:
            with lock:
                index = next(next_index, None)
            if index is None:
                return
            latencies[index], answers[index] = post(url, sentences[index])

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    seconds = time.perf_counter() - start
    sent = [i for i, latency in enumerate(latencies) if latency > 0]
    return {
        "clients": clients,
        "sent": len(sent),
        "failed": sum(answers[i] is None for i in sent),
        "seconds": round(seconds, 2),
        "sentences_per_second": round(len(sent) / seconds, 2),
        "p50_ms": round(1e3 * percentile([latencies[i] for i in sent], 50), 2),
        "p99_ms": round(1e3 * percentile([latencies[i] for i in sent], 99), 2),
        "answers": answers,
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def round_trips(url: str, count: int = 200) -> float:
    """p50 seconds of `GET /languages`: the HTTP round trip without the model."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        with urllib.request.urlopen(f"{url}/languages", timeout=30) as answer:
            answer.read()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def translate_p50(model_dir: str, sentences: list[str]) -> float:
    """p50 seconds of one in-process `translate()` call of one sentence (the server's work for a lone request)."""
    model, tokenizer = load_model_and_tokenizer(model_dir)
    model.eval()
    translate(model, tokenizer, sentences[:5])  # warm-up
    times = []
    for sentence in sentences:
        start = time.perf_counter()
        translate(model, tokenizer, [sentence])
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor()


def main(argv=None) -> None:
    args = parse_args(argv)
    sentences = held_out_sources(args.pairs_file, args.num_sentences)
    url = f"http://127.0.0.1:{args.port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "modeling_gru_seq2seq.serve", args.model, "--port", str(args.port)],
        cwd=os.path.join(HERE, ".."),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{url}/languages", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.5)
        load(f"{url}/translate", sentences[:20], 1, args.max_seconds)  # warm-up (first-call allocations)
        round_trip = round_trips(url)
        one = load(f"{url}/translate", sentences, 1, args.max_seconds)
        before = json.loads(urllib.request.urlopen(f"{url}/stats").read())
        many = load(f"{url}/translate", sentences, args.clients, args.max_seconds)
        after = json.loads(urllib.request.urlopen(f"{url}/stats").read())
    finally:
        server.terminate()
        server.wait(timeout=30)
    work = translate_p50(args.model, sentences[:200])
    same = sum(a == b for a, b in zip(one.pop("answers"), many.pop("answers"), strict=True) if a is not None)
    formed = {
        size: after["batch_sizes"].get(size, 0) - before["batch_sizes"].get(size, 0) for size in after["batch_sizes"]
    }
    result = {
        "machine": machine(),
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "model": args.model,
        "sentences": len(sentences),
        "one_client": one,
        "concurrent": many,
        "speedup": round(many["sentences_per_second"] / one["sentences_per_second"], 2),
        "same_answers": same,
        "batches_formed_concurrent": {size: count for size, count in formed.items() if count},
        "translate_call_p50_ms": round(1e3 * work, 2),
        "http_round_trip_p50_ms": round(1e3 * round_trip, 2),
        "lone_client_bound_ms": round(1e3 * (work + round_trip), 2),
    }
    print(f"machine: {result['machine']}; {len(sentences)} sentences, one per request")
    print(f"{'clients':>8} {'sent':>5} {'failed':>6} {'sent/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for row in (one, many):
        print(
            f"{row['clients']:>8} {row['sent']:>5} {row['failed']:>6} {row['sentences_per_second']:>8} "
            f"{row['p50_ms']:>8} {row['p99_ms']:>8}"
        )
    print(f"throughput {args.clients} clients vs 1: {result['speedup']}x; same answers: {same} of {len(sentences)}")
    print(
        f"lone client p50 {one['p50_ms']} ms vs translate() p50 {result['translate_call_p50_ms']} ms + HTTP round "
        f"trip p50 {result['http_round_trip_p50_ms']} ms = {result['lone_client_bound_ms']} ms"
    )
    print(
        f"batches formed under {args.clients} clients (requests per batch: count): "
        f"{result['batches_formed_concurrent']}"
    )
    with open(args.output, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
