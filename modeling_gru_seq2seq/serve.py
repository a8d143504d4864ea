"""`gru-serve MODEL`: a web page to translate and look at attention, and a translation API, for a saved model.

    gru-serve runs/fr-en                      # http://127.0.0.1:7860: the page; POST /translate, GET /languages
    curl -s 127.0.0.1:7860/translate -H 'Content-Type: application/json' \\
        -d '{"q": "Je suis content.", "source": "fr", "target": "en"}'     # {"translatedText": "i m happy ."}
    gru-serve runs/fr-en --write_space space/ --model_id someone/gru-fr-en  # a Hugging Face Space, then exit

The API speaks LibreTranslate's shapes, so its clients work: `POST /translate` takes JSON or a form with `q` (a
string, or a list of strings), `source` (the model's source language, or `auto`), `target`, `alternatives` (N
more translations each, from beam search), `format` and `api_key` (accepted, ignored) and answers
`{"translatedText": ...}`; `GET /languages` lists the pair. A text holding several lines is translated line by
line. Errors are `{"error": "..."}` with a 4xx status, and the server goes on serving.

Concurrent requests, from the API and from the page alike, are decoded together: one queue (`Batcher`) feeds a
single decoding thread, which takes every request waiting when it is free, up to `--batch_size` sentences, and
translates them in one `translate()` call. A request that finds the thread idle starts at once, alone: nothing
waits for company. `GET /stats` shows the batches formed. Output is capped by the model's per-source length limit
and `--max_source_length`, and a request by `MAX_BODY_BYTES` and `MAX_SENTENCES`.

The page (Gradio Blocks at `/`): a text box (one sentence per line), the beams, a translate button, the
translations, and for a chosen line the attention heatmap, as `gru-translate --show_attention` draws it. It
fetches nothing from outside the machine: no analytics, no web fonts.
"""

import argparse
import asyncio
import collections
import concurrent.futures
import dataclasses
import json
import os
import queue
import re
import sys
import threading
import urllib.parse

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported

import numpy as np

from .commands import UsageError
from .loading import ModelLoadError
from .plotting import attention_image
from .translate import (
    add_generation_arguments,
    check_generation_arguments,
    generation_kwargs,
    inference_device,
    load_model,
    quiet_tokenizer,
    translate,
)

MAX_BODY_BYTES = 64 * 1024  # a request's body
MAX_SENTENCES = 128  # lines in one request
MAX_ALTERNATIVES = 8
LANGUAGE_NAMES = {
    "ar": "Arabic",
    "cs": "Czech",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "es": "Spanish",
    "fi": "Finnish",
    "fr": "French",
    "he": "Hebrew",
    "hi": "Hindi",
    "hu": "Hungarian",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "nl": "Dutch",
    "pl": "Polish",
    "pt": "Portuguese",
    "ru": "Russian",
    "sv": "Swedish",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "zh": "Chinese",
}
EXAMPLES = {"fr": ["Je suis content.", "Il fait froid.", "Tu n'es pas seule.", "Nous sommes amis."]}
# No web fonts (the default theme's come from Google): the system's own
FONTS = {"font": ["ui-sans-serif", "system-ui", "sans-serif"], "font_mono": ["ui-monospace", "monospace"]}


class RequestError(ValueError):
    """A bad request: its message is the `error` of the answer, `status` its HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------- batching across requests


@dataclasses.dataclass
class Job:
    sentences: list[str]
    returned: int  # sequences per sentence
    num_beams: int
    attention: bool
    future: concurrent.futures.Future = dataclasses.field(default_factory=concurrent.futures.Future)

    @property
    def settings(self) -> tuple:
        return self.returned, self.num_beams, self.attention


class Batcher:
    """One queue of translation jobs and one thread decoding them: each time it is free, the thread takes every
    job waiting (up to `max_sentences` sentences in all), and translates those with the same settings in one
    `translate()` call. `submit` returns a future of the job's translations (`num_return_sequences` per sentence,
    as `translate` returns them)."""

    def __init__(self, model, tokenizer, options: dict, max_sentences: int):
        self.model, self.tokenizer, self.options, self.max_sentences = model, tokenizer, options, max_sentences
        self.jobs: queue.Queue = queue.Queue()
        self.lock = threading.Lock()
        self.batches = collections.Counter()  # requests decoded together -> how many times
        self.sentences = collections.Counter()  # sentences decoded together -> how many times
        threading.Thread(target=self._run, name="gru-serve decoding", daemon=True).start()

    def submit(self, sentences: list[str], returned: int = 1, num_beams: int | None = None, attention=False):
        job = Job(sentences, returned, num_beams or self.options["num_beams"], attention)
        self.jobs.put(job)
        return job.future

    def stats(self) -> dict:
        with self.lock:
            return {
                "batches": sum(self.batches.values()),
                "requests": sum(size * count for size, count in self.batches.items()),
                "largest_batch": max(self.batches, default=0),
                "batch_sizes": {str(size): count for size, count in sorted(self.batches.items())},
                "sentences_per_batch": {str(size): count for size, count in sorted(self.sentences.items())},
            }

    def _take(self) -> list[Job]:
        jobs = [self.jobs.get()]  # waits for the first; the rest only if already there
        count = len(jobs[0].sentences)
        while count < self.max_sentences:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                break
            jobs.append(job)
            count += len(job.sentences)
        return jobs

    def _run(self) -> None:
        with quiet_tokenizer(self.tokenizer):  # (the page and the API cut long sources silently, as documented)
            while True:
                jobs = self._take()
                groups = collections.defaultdict(list)
                for job in jobs:
                    groups[job.settings].append(job)
                for (returned, num_beams, attention), group in groups.items():
                    self._translate(group, returned, num_beams, attention)

    def _translate(self, jobs: list[Job], returned: int, num_beams: int, attention: bool) -> None:
        sentences = [sentence for job in jobs for sentence in job.sentences]
        options = dict(self.options, num_beams=max(num_beams, returned), num_return_sequences=returned)
        if options["num_beams"] == 1:  # the page's 1 beam where the server's beam search has a length penalty
            options.pop("length_penalty", None)
        options["batch_size"] = max(options["batch_size"], len(sentences))  # one generate() call where it fits
        try:
            translations = translate(self.model, self.tokenizer, sentences, output_attentions=attention, **options)
        except Exception as error:  # the job's answer, not the thread's end
            for job in jobs:
                job.future.set_exception(error)
            return
        with self.lock:
            self.batches[len(jobs)] += 1
            self.sentences[len(sentences)] += 1
        start = 0
        for job in jobs:
            end = start + len(job.sentences) * returned
            job.future.set_result(translations[start:end])
            start = end


# ---------------------------------------------------------------- the API


def languages_of(tokenizer) -> tuple[str, str]:
    return tokenizer.source_lang, tokenizer.target_lang


def language_list(tokenizer) -> list[dict]:
    """`GET /languages`, LibreTranslate's shape."""
    source, target = languages_of(tokenizer)
    return [{"code": source, "name": LANGUAGE_NAMES.get(source, source), "targets": [target]}]


async def read_request(request) -> dict:
    """The request's parameters from JSON or a form (a `q` given twice in a form is a list), the body limited to
    `MAX_BODY_BYTES`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise RequestError(f"the body is {declared} bytes, over the limit of {MAX_BODY_BYTES}", 413)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise RequestError(f"the body is over the limit of {MAX_BODY_BYTES} bytes", 413)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded" or kind == "multipart/form-data":
        if kind == "multipart/form-data":
            fields = await multipart_fields(request, body)
        else:
            try:
                fields = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True, errors="strict")
            except UnicodeDecodeError:
                raise RequestError("the form is not UTF-8 text") from None
        return {key: values[0] if len(values) == 1 else values for key, values in fields.items()}
    try:
        parameters = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RequestError(f"the body is not JSON ({error}); send JSON or a form") from None
    except RecursionError:  # `[[[[...`: json's parser recurses
        raise RequestError("the body is JSON nested too deeply") from None
    if not isinstance(parameters, dict):
        raise RequestError('the body is not a JSON object such as {"q": "...", "source": "fr", ...}')
    return parameters


async def multipart_fields(request, body: bytes) -> dict[str, list]:
    """The fields of a `multipart/form-data` body already read (`request`'s stream is spent: a request that
    replays `body` parses it); a malformed body is a `RequestError`, an uploaded file a field's value."""
    from starlette.exceptions import HTTPException
    from starlette.formparsers import MultiPartException
    from starlette.requests import Request

    async def replay():
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form()
    except (HTTPException, MultiPartException) as error:
        raise RequestError(f"the form does not parse ({getattr(error, 'detail', None) or error})") from None
    fields = {key: form.getlist(key) for key in form}
    await form.close()  # (an uploaded file's temporary file; a file is no text: `checked_request` says so)
    return fields


def shown(value) -> str:
    """`value` in an error: as JSON where it is JSON's, else its type (a form's uploaded file)."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return type(value).__name__


def checked_request(parameters: dict, tokenizer) -> tuple[list[str], bool, int]:
    """`(texts, given_as_list, alternatives)` of a `POST /translate`, or `RequestError`."""
    source, target = languages_of(tokenizer)
    texts = parameters.get("q")
    if texts is None or texts == "":
        raise RequestError("q: missing or empty (the text to translate, or a list of texts)")
    as_list = isinstance(texts, list)
    texts = texts if as_list else [texts]
    if as_list and not texts:
        raise RequestError("q: an empty list")
    bad = [text for text in texts if not isinstance(text, str)]  # (a null item among them)
    if bad:
        raise RequestError(f"q: every item must be a string, got {shown(bad[0])}")
    asked_source = parameters.get("source", source)
    asked_target = parameters.get("target", target)
    if asked_source not in (source, "auto") or asked_target != target:
        raise RequestError(
            f"source {asked_source!r} -> target {asked_target!r}: this model translates {source} to {target}"
        )
    alternatives = parameters.get("alternatives", 0)
    if isinstance(alternatives, str) and alternatives.strip().isdigit():  # a form's values are strings
        alternatives = int(alternatives)
    if (
        not isinstance(alternatives, int)
        or isinstance(alternatives, bool)
        or not 0 <= alternatives <= MAX_ALTERNATIVES
    ):
        raise RequestError(f"alternatives: got {alternatives!r}, want an integer from 0 to {MAX_ALTERNATIVES}")
    lines = sum(len(text.splitlines()) or 1 for text in texts)
    if lines > MAX_SENTENCES:
        raise RequestError(f"q: {lines} sentences (lines), over the limit of {MAX_SENTENCES} per request", 413)
    return texts, as_list, alternatives


def translate_texts(batcher: Batcher, texts: list[str], alternatives: int) -> concurrent.futures.Future:
    """A future of `(translated_texts, alternatives_per_text)`: each text's lines go to the queue as sentences,
    and come back joined by line."""
    lines = [text.splitlines() or [""] for text in texts]
    returned = alternatives + 1
    inner = batcher.submit([line for text_lines in lines for line in text_lines], returned)
    outer = concurrent.futures.Future()

    def done(future):
        if future.exception() is not None:
            outer.set_exception(future.exception())
            return
        outputs = [translation.text for translation in future.result()]
        texts_out, alternatives_out, start = [], [], 0
        for text_lines in lines:
            ranked = [outputs[start + i * returned : start + (i + 1) * returned] for i in range(len(text_lines))]
            start += len(text_lines) * returned
            texts_out.append("\n".join(line[0] for line in ranked))
            alternatives_out.append(["\n".join(line[rank] for line in ranked) for rank in range(1, returned)])
        outer.set_result((texts_out, alternatives_out))

    inner.add_done_callback(done)
    return outer


def build_api(app, batcher: Batcher, tokenizer) -> None:
    """`POST /translate`, `GET /languages` and `GET /stats` on the FastAPI `app`."""
    from fastapi import Request
    from fastapi.responses import JSONResponse

    def error(message: str, status: int):
        return JSONResponse({"error": message}, status_code=status)

    @app.post("/translate")
    async def translate_endpoint(request: Request):
        try:
            parameters = await read_request(request)
            texts, as_list, alternatives = checked_request(parameters, tokenizer)
        except RequestError as problem:
            return error(str(problem), problem.status)
        try:
            translated, others = await asyncio.wrap_future(translate_texts(batcher, texts, alternatives))
        except Exception as problem:  # the model failed on it: the server goes on
            return error(f"translation failed: {one_line(problem)}", 500)
        answer = {"translatedText": translated if as_list else translated[0]}
        if alternatives:
            answer["alternatives"] = others if as_list else others[0]
        if parameters.get("source") == "auto":  # as LibreTranslate: the language taken
            detected = {"confidence": 100.0, "language": tokenizer.source_lang}
            answer["detectedLanguage"] = [detected] * len(texts) if as_list else detected
        return answer

    @app.get("/languages")
    async def languages_endpoint():
        return language_list(tokenizer)

    @app.get("/stats")
    async def stats_endpoint():
        return batcher.stats()


def one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# ---------------------------------------------------------------- the page


def model_summary(name: str, tokenizer) -> str:
    """A line for the page: the languages, the vocabulary, and the scores of the model's card
    (`all_results.json` beside a local model)."""
    source, target = languages_of(tokenizer)
    parts = [f"{LANGUAGE_NAMES.get(source, source)} -> {LANGUAGE_NAMES.get(target, target)}"]
    parts.append(f"{tokenizer.vocabulary} vocabulary, {tokenizer.normalization!r} normalization")
    try:
        with open(os.path.join(name, "all_results.json"), encoding="utf-8") as handle:
            results = json.load(handle)
    except (OSError, ValueError):
        results = {}
    for split, label in (("predict", "test"), ("eval", "validation")):
        if f"{split}_bleu" in results:
            scores = f"{label} BLEU {results[f'{split}_bleu']:.1f}"
            if f"{split}_chrf" in results:
                scores += f", chrF {results[f'{split}_chrf']:.1f}"
            parts.append(scores)
            break
    return " · ".join(parts)


def build_page(batcher: Batcher, tokenizer, summary: str, default_beams: int):
    """The Gradio Blocks page: a text box, the beams, a translate button, the translations, a line chooser and the
    attention heatmap of the chosen line."""
    import gradio as gr

    source, target = (LANGUAGE_NAMES.get(code, code) for code in languages_of(tokenizer))
    with gr.Blocks(title=f"gru-seq2seq: {source} -> {target}", analytics_enabled=False) as page:
        gr.Markdown(f"## gru-seq2seq: {source} -> {target}\n{summary}")
        with gr.Row():
            text = gr.Textbox(label=f"{source}, one sentence per line", lines=6, elem_id="source")
            translations = gr.Textbox(label=target, lines=6, interactive=False, elem_id="translations")
        with gr.Row():
            beams = gr.Slider(1, 10, value=default_beams, step=1, label="beams", elem_id="beams")
            button = gr.Button("Translate", variant="primary", elem_id="translate")
        line = gr.Dropdown(label="attention of line", choices=[], interactive=True, elem_id="line")
        heatmap = gr.Image(
            label="attention", type="numpy", interactive=False, elem_id="heatmap", buttons=["download", "fullscreen"]
        )
        kept = gr.State([])
        if tokenizer.source_lang in EXAMPLES:
            gr.Examples([[sentence] for sentence in EXAMPLES[tokenizer.source_lang]], inputs=text)

        def translate_lines(value: str, beams_value: float):
            sentences = value.splitlines()
            if not any(sentence.strip() for sentence in sentences):
                return "", gr.update(choices=[], value=None), None, []
            if len(sentences) > MAX_SENTENCES:
                raise gr.Error(f"{len(sentences)} lines, over the limit of {MAX_SENTENCES}")
            result = batcher.submit(sentences, 1, int(beams_value), attention=True).result()
            views = [(t.source_tokens, t.output_tokens, t.attention) for t in result]
            choices = [(f"{i + 1}: {sentence}", i) for i, sentence in enumerate(sentences)]
            return "\n".join(t.text for t in result), gr.update(choices=choices, value=0), heatmap_of(views, 0), views

        def show_line(index, views):
            return heatmap_of(views, index)

        button.click(
            translate_lines,
            [text, beams],
            [translations, line, heatmap, kept],
            api_name="translate_lines",
            concurrency_limit=None,  # concurrent users reach the queue together, to be batched
        )
        line.input(show_line, [line, kept], heatmap, api_name=False)
    return page


def heatmap_of(views: list, index) -> np.ndarray | None:
    """The heatmap of line `index` (`None` for an empty line)."""
    if index is None or not 0 <= int(index) < len(views):
        return None
    source_tokens, output_tokens, attention = views[int(index)]
    return attention_image(source_tokens, output_tokens, attention) if output_tokens else None


def build_app(batcher: Batcher, tokenizer, summary: str, default_beams: int):
    """The FastAPI app: the API's routes, and the page at `/`."""
    import gradio as gr
    from fastapi import FastAPI

    app = FastAPI(title="gru-serve", docs_url=None, redoc_url=None)  # (their pages fetch scripts from a CDN)
    build_api(app, batcher, tokenizer)
    page = build_page(batcher, tokenizer, summary, default_beams)
    return gr.mount_gradio_app(app, page, path="/", theme=gr.themes.Default(**FONTS), footer_links=["api"])


# ---------------------------------------------------------------- a Hugging Face Space

SPACE_TEMPLATE = os.path.join(os.path.dirname(__file__), "space_app.py")
SPACE_REQUIREMENTS = ["torch", "transformers>=5,<6", "tokenizers", "gradio", "matplotlib", "numpy"]


def write_space(directory: str, model_id: str, gradio_version: str) -> list[str]:
    """`app.py`, `requirements.txt` and `README.md` (Spaces' front matter) of a Space that serves `model_id` with
    the model's own code (the package is not installed there)."""
    os.makedirs(directory, exist_ok=True)
    with open(SPACE_TEMPLATE, encoding="utf-8") as handle:
        app = handle.read()
    app, replaced = re.subn(r"^MODEL_ID = None\b.*$", f"MODEL_ID = {model_id!r}", app, count=1, flags=re.M)
    assert replaced == 1, "space_app.py holds no MODEL_ID line"
    readme = "\n".join(
        [
            "---",
            f"title: {model_id.split('/')[-1]}",
            "sdk: gradio",
            f"sdk_version: {gradio_version}",
            "app_file: app.py",
            "pinned: false",
            "license: mit",
            "models:",
            f"- {model_id}",
            "---",
            "",
            f"A web page for the translation model [{model_id}](https://huggingface.co/{model_id}), an attention GRU "
            "(gru-seq2seq): type sentences, one per line, and see which source words each output word attended.",
            "",
        ]
    )
    files = {"app.py": app, "requirements.txt": "\n".join(SPACE_REQUIREMENTS) + "\n", "README.md": readme}
    written = []
    for name, content in files.items():
        path = os.path.join(directory, name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(content)
        written.append(path)
    return written


# ---------------------------------------------------------------- the command


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="gru-serve",
        description="Serve a trained gru-seq2seq model: a web page with the attention heatmap at /, and a "
        "LibreTranslate-style API (POST /translate, GET /languages); or write a Hugging Face Space for it.",
    )
    parser.add_argument("model", metavar="MODEL", help="a saved model directory or a Hub id")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on (default: 7860)")
    parser.add_argument(
        "--write_space", metavar="DIR", help="write a Hugging Face Space (app.py, requirements.txt, README.md), exit"
    )
    parser.add_argument("--model_id", metavar="HUB_ID", help="--write_space: the Hub id the Space loads")
    group = add_generation_arguments(parser)
    group.set_defaults(batch_size=64)
    args = parser.parse_args(argv)
    check_generation_arguments(parser, args)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port: got {args.port}, want 0 to 65535")
    if args.model_id and not args.write_space:
        parser.error("--model_id names the model a written Space loads: give --write_space DIR")
    if args.num_return_sequences != 1:
        parser.error("--num_return_sequences: each request asks for its own (the API's alternatives)")
    return args


def check_port(host: str, port: int) -> None:
    """One line now for a port taken or an address not ours, rather than uvicorn's log after the model loads."""
    import socket

    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        raise UsageError(f"--host {host} --port {port}: cannot listen there ({error.strerror or error})") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.write_space:
            import gradio

            from .loading import local_path

            model_id = args.model_id or args.model
            if not args.model_id and (local_path(args.model) or os.path.isdir(args.model)):
                raise UsageError(
                    f"--write_space: {args.model} is a local folder; a Space loads its model from the Hub: give "
                    "--model_id HUB_ID (push the model first: run_translation.py --push_to_hub)"
                )
            for path in write_space(args.write_space, model_id, gradio.__version__):
                print(path)
            return 0
        import gradio  # noqa: F401  (a missing [serve] extra shows here, before the model loads)
        import uvicorn

        device = inference_device(args.device, args.dtype)
        check_port(args.host, args.port)
        model, tokenizer = load_model(args.model, device, args.dtype)
        options = {key: value for key, value in generation_kwargs(args).items() if key != "num_return_sequences"}
        batcher = Batcher(model, tokenizer, options, max_sentences=args.batch_size)
        app = build_app(batcher, tokenizer, model_summary(args.model, tokenizer), args.num_beams)
        shown_host = f"[{args.host}]" if ":" in args.host else args.host
        print(
            f"gru-serve: {args.model} on {device}: http://{shown_host}:{args.port}/ (the page; POST /translate, "
            "GET /languages, GET /stats)",
            flush=True,
        )
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    except (UsageError, ModelLoadError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ImportError as error:
        print(
            f"error: {error.name or error}: gru-serve needs the serve extra (pip install 'gru-seq2seq[serve]')",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
