"""`gru-serve` as its users meet it (issue 31): a real server in a subprocess with a tiny model that knows
`tiny.PAIRS` by heart, asked over HTTP (the LibreTranslate-shaped API) and through `gradio_client` (the page's
`/translate_lines`); bad requests answered with their 4xx and the server serving on; concurrent requests decoded
together; the Hugging Face Space it writes, run where the package cannot be imported; and the command's errors.
Every expectation is what `translate()` gives for the same sentences, in this process, with the saved model."""

import concurrent.futures
import socket
import subprocess
import sys
import threading
import urllib.parse

import pytest
from gradio_client import Client
from PIL import Image
from serving import get, post, save_tiny_model, served
from tiny import SOURCES, TARGETS

from modeling_gru_seq2seq import serve
from modeling_gru_seq2seq.loading import load_model_and_tokenizer
from modeling_gru_seq2seq.translate import generation_kwargs, translate


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("serve") / "model"
    save_tiny_model(directory)
    return directory


@pytest.fixture(scope="module")
def loaded(model_dir):
    """The saved model, loaded here as the server loads it: what the expectations are computed with."""
    model, tokenizer = load_model_and_tokenizer(str(model_dir))
    return model.eval(), tokenizer


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    """`gru-serve MODEL`'s URL, one server for the module."""
    with served(model_dir, env={"GRADIO_TEMP_DIR": str(tmp_path_factory.mktemp("gradio"))}) as url:
        yield url


def texts(loaded, sentences: list[str], **options) -> list[str]:
    model, tokenizer = loaded
    return [translation.text for translation in translate(model, tokenizer, sentences, **options)]


def text_of(loaded, text: str, **options) -> str:
    """A text of several lines translated line by line, as the API and the page do."""
    return "\n".join(texts(loaded, text.splitlines(), **options))


def client(url: str, tmp_path) -> Client:
    return Client(url, verbose=False, download_files=str(tmp_path), analytics_enabled=False)


def test_the_tiny_model_knows_its_pairs(loaded):
    """(So that the tests below compare real translations, not empty ones.)"""
    assert texts(loaded, SOURCES) == TARGETS


# ---------------------------------------------------------------- the API


def test_translate_a_string_and_a_list(server, loaded):
    status, answer = post(f"{server}/translate", {"q": SOURCES[0], "source": "fr", "target": "en"})
    assert (status, answer) == (200, {"translatedText": texts(loaded, [SOURCES[0]])[0]})

    several = [SOURCES[1], "", f"{SOURCES[4]}\n{SOURCES[3]}", SOURCES[6]]  # an empty item, a text of two lines
    status, answer = post(f"{server}/translate", {"q": several, "source": "fr", "target": "en", "format": "text"})
    assert status == 200
    assert answer == {"translatedText": [text_of(loaded, text) for text in several]}
    assert answer["translatedText"][1] == ""


def test_alternatives_are_the_next_beams(server, loaded):
    """`alternatives` N: the N beams after the best of beam search with N + 1 beams, per item for a list (a
    text of several lines: its lines' beams of each rank, joined)."""
    count = 2

    def beams(text: str) -> list[str]:
        lines = text.splitlines() or [""]
        ranked = [texts(loaded, [line], num_beams=count + 1, num_return_sequences=count + 1) for line in lines]
        return ["\n".join(line[rank] for line in ranked) for rank in range(count + 1)]

    status, answer = post(f"{server}/translate", {"q": SOURCES[2], "target": "en", "alternatives": count})
    assert status == 200
    assert answer == {"translatedText": beams(SOURCES[2])[0], "alternatives": beams(SOURCES[2])[1:]}
    assert len(set(beams(SOURCES[2]))) == count + 1  # (beams that differ: each in its place)

    several = [SOURCES[0], "", f"{SOURCES[5]}\n{SOURCES[7]}"]
    status, answer = post(f"{server}/translate", {"q": several, "alternatives": count})
    assert status == 200
    assert answer == {
        "translatedText": [beams(text)[0] for text in several],
        "alternatives": [beams(text)[1:] for text in several],
    }
    assert answer["alternatives"][1] == [""] * count


def test_a_form_is_read_as_json_is(server, loaded):
    """`application/x-www-form-urlencoded` (one `q` a string, a repeated `q` a list, `alternatives` a string of
    digits) and `multipart/form-data`."""
    form = urllib.parse.urlencode({"q": SOURCES[3], "source": "fr", "target": "en", "api_key": ""}).encode()
    status, answer = post(f"{server}/translate", form, "application/x-www-form-urlencoded")
    assert (status, answer) == (200, {"translatedText": texts(loaded, [SOURCES[3]])[0]})

    fields = [("q", SOURCES[4]), ("q", SOURCES[7]), ("source", "fr"), ("target", "en"), ("alternatives", "1")]
    status, answer = post(
        f"{server}/translate", urllib.parse.urlencode(fields).encode(), "application/x-www-form-urlencoded"
    )
    beams = [texts(loaded, [SOURCES[i]], num_beams=2, num_return_sequences=2) for i in (4, 7)]
    assert (status, answer) == (
        200,
        {"translatedText": [first for first, _ in beams], "alternatives": [[second] for _, second in beams]},
    )

    body, content_type = multipart(fields[:4])
    status, answer = post(f"{server}/translate", body, content_type)
    assert (status, answer) == (200, {"translatedText": texts(loaded, [SOURCES[4], SOURCES[7]])})


def multipart(fields: list[tuple[str, str]], file_field: str | None = None) -> tuple[bytes, str]:
    """A `multipart/form-data` body of `fields` (and of a file uploaded as `file_field`), and its content type."""
    boundary = "gru-serve-test-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n' for name, value in fields
    ]
    if file_field:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="q.txt"\r\n'
            f"Content-Type: text/plain\r\n\r\n{SOURCES[0]}\r\n"
        )
    return ("".join(parts) + f"--{boundary}--\r\n").encode(), f"multipart/form-data; boundary={boundary}"


def test_source_auto_says_the_language_it_took(server, loaded):
    detected = {"confidence": 100.0, "language": loaded[1].source_lang}
    status, answer = post(f"{server}/translate", {"q": SOURCES[5], "source": "auto", "target": "en"})
    assert (status, answer) == (200, {"translatedText": texts(loaded, [SOURCES[5]])[0], "detectedLanguage": detected})

    status, answer = post(f"{server}/translate", {"q": SOURCES[:2], "source": "auto", "target": "en"})
    assert (status, answer) == (
        200,
        {"translatedText": texts(loaded, SOURCES[:2]), "detectedLanguage": [detected] * 2},
    )


def test_languages(server, loaded):
    tokenizer = loaded[1]
    assert (tokenizer.source_lang, tokenizer.target_lang) == ("fr", "en")
    assert get(f"{server}/languages") == [{"code": "fr", "name": "French", "targets": ["en"]}]


def test_the_page_through_gradio_client(server, loaded, tmp_path):
    """The page's `translate_lines`: the translations (a blank line gives an empty one), the line chooser on the
    first line, its attention heatmap (an image file for the client); nothing for an empty text."""
    text = f"{SOURCES[0]}\n\n{SOURCES[6]}\n{SOURCES[2]}"
    page = client(server, tmp_path)
    translations, line, heatmap = page.predict(text, 2, api_name="/translate_lines")
    assert translations == text_of(loaded, text, num_beams=2)
    assert translations.split("\n")[1] == ""
    assert line["choices"] == [[f"{i + 1}: {sentence}", i] for i, sentence in enumerate(text.split("\n"))]
    assert line["value"] == 0
    with Image.open(heatmap) as image:
        assert min(image.size) > 50

    translations, line, heatmap = page.predict("", 1, api_name="/translate_lines")
    assert (translations, line["choices"], line["value"], heatmap) == ("", [], None, None)


# ---------------------------------------------------------------- bad requests

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
BAD_REQUESTS = {  # name: (body, content type, status, a part of the error)
    "invalid JSON": (b'{"q": "je suis content .", ', JSON, 400, "not JSON"),
    "JSON nested too deeply": (b"[" * 60000, JSON, 400, "nested"),
    "a JSON array": ([{"q": SOURCES[0]}], JSON, 400, "not a JSON object"),
    "a JSON string": (SOURCES[0], JSON, 400, "not a JSON object"),
    "no q": ({"source": "fr", "target": "en"}, JSON, 400, "q: missing"),
    "an empty q": ({"q": ""}, JSON, 400, "q: missing or empty"),
    "an empty list": ({"q": []}, JSON, 400, "q: an empty list"),
    "a number": ({"q": 5}, JSON, 400, "got 5"),
    "a number in the list": ({"q": [SOURCES[0], 5]}, JSON, 400, "got 5"),
    "null in the list": ({"q": [SOURCES[0], None]}, JSON, 400, "got null"),
    "a nested list": ({"q": [[SOURCES[0]]]}, JSON, 400, "must be a string"),
    "source de": ({"q": SOURCES[0], "source": "de", "target": "en"}, JSON, 400, "translates fr to en"),
    "target fr": ({"q": SOURCES[0], "source": "fr", "target": "fr"}, JSON, 400, "translates fr to en"),
    "alternatives over the limit": ({"q": "a", "alternatives": serve.MAX_ALTERNATIVES + 1}, JSON, 400, "alternatives"),
    "alternatives -1": ({"q": "a", "alternatives": -1}, JSON, 400, "alternatives"),
    "alternatives not an int": ({"q": "a", "alternatives": 1.5}, JSON, 400, "alternatives"),
    "alternatives a word": ({"q": "a", "alternatives": "two"}, JSON, 400, "alternatives"),
    "alternatives true": ({"q": "a", "alternatives": True}, JSON, 400, "alternatives"),
    "a body over 64 KB": ({"q": "je " * (serve.MAX_BODY_BYTES // 2)}, JSON, 413, "over the limit"),
    "too many sentences": ({"q": [SOURCES[0]] * (serve.MAX_SENTENCES + 1)}, JSON, 413, "over the limit"),
    "too many lines": ({"q": "\n".join([SOURCES[0]] * (serve.MAX_SENTENCES + 1))}, JSON, 413, "over the limit"),
    "a form's empty q": (b"q=&source=fr&target=en", FORM, 400, "q: missing or empty"),
    "a form's alternatives": (b"q=je&alternatives=x", FORM, 400, "alternatives"),
    "a form not UTF-8": (b"q=%ff", FORM, 400, "UTF-8"),
    "a broken multipart body": (b"--x\r\nnothing", "multipart/form-data", 400, "the form does not parse"),
    "a file as q": (*multipart([("source", "fr")], file_field="q"), 400, "must be a string"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_a_bad_request_is_answered_and_the_server_goes_on(server, loaded, case):
    body, content_type, status, message = BAD_REQUESTS[case]
    answer_status, answer = post(f"{server}/translate", body, content_type)
    assert answer_status == status, answer
    assert list(answer) == ["error"] and message in answer["error"] and "\n" not in answer["error"]
    assert post(f"{server}/translate", {"q": SOURCES[1]}) == (200, {"translatedText": texts(loaded, [SOURCES[1]])[0]})


# ---------------------------------------------------------------- batching


def test_concurrent_requests_are_decoded_together(server, loaded):
    """8 clients at once, each with its own sentences (rounds until some requests met in the queue): each gets
    its own translations, and `/stats` counts a batch of more than one request."""
    asked = [[SOURCES[(i + k) % len(SOURCES)] for k in range(2 + i)] * 2 for i in range(8)]  # 4 to 18 sentences
    expected = [texts(loaded, sentences) for sentences in asked]
    before = get(f"{server}/stats")["batch_sizes"]
    start = threading.Barrier(len(asked))

    def ask(i: int):
        start.wait(timeout=60)
        return post(f"{server}/translate", {"q": asked[i], "source": "fr", "target": "en"})

    for _ in range(10):
        with concurrent.futures.ThreadPoolExecutor(len(asked)) as pool:
            answers = list(pool.map(ask, range(len(asked))))
        assert answers == [(200, {"translatedText": translations}) for translations in expected]
        stats = get(f"{server}/stats")
        if any(int(size) > 1 and count > before.get(size, 0) for size, count in stats["batch_sizes"].items()):
            break
    assert stats["largest_batch"] > 1, stats
    assert any(int(size) > 1 and count > before.get(size, 0) for size, count in stats["batch_sizes"].items()), stats


def batcher_of(loaded, model_dir, *flags: str, max_sentences: int = 64) -> serve.Batcher:
    """A `Batcher` with `gru-serve MODEL *flags`'s options."""
    args = serve.parse_args([str(model_dir), *flags])
    options = {key: value for key, value in generation_kwargs(args).items() if key != "num_return_sequences"}
    return serve.Batcher(*loaded, options, max_sentences=max_sentences)


@pytest.fixture
def gated(monkeypatch):
    """`serve.translate` recording each call's sentences, and holding the first until `release` is set."""
    calls, busy, release = [], threading.Event(), threading.Event()

    def translate_when_released(model, tokenizer, sentences, **options):
        calls.append(list(sentences))
        busy.set()
        assert release.wait(timeout=60)
        if "fail" in sentences:
            raise RuntimeError("the model failed\non two lines")
        return translate(model, tokenizer, sentences, **options)

    monkeypatch.setattr(serve, "translate", translate_when_released)
    return calls, busy, release


def test_jobs_queued_while_the_thread_is_busy_come_out_in_one_batch(loaded, model_dir, gated):
    """In-process: the first job alone; the four that came meanwhile in one `translate()` call, up to
    `max_sentences`; jobs of other settings in a call of their own; each future its own translations."""
    calls, busy, release = gated
    batcher = batcher_of(loaded, model_dir, max_sentences=4)
    first = batcher.submit([SOURCES[0]])
    assert busy.wait(timeout=60)
    queued = [batcher.submit([sentence]) for sentence in SOURCES[1:4]]
    two_each = batcher.submit([SOURCES[4]], returned=2)
    too_many = batcher.submit(SOURCES[5:7])  # over max_sentences with the others: the next batch
    release.set()
    assert first.result(timeout=60)[0].text == TARGETS[0]
    assert [future.result(timeout=60)[0].text for future in queued] == TARGETS[1:4]
    assert [t.text for t in two_each.result(timeout=60)] == texts(
        loaded, [SOURCES[4]], num_beams=2, num_return_sequences=2
    )
    assert [t.text for t in too_many.result(timeout=60)] == TARGETS[5:7]
    assert calls == [SOURCES[:1], SOURCES[1:4], SOURCES[4:5], SOURCES[5:7]]
    stats = batcher.stats()  # a batch: the jobs of one `translate()` call
    assert stats["largest_batch"] == 3 and stats["batch_sizes"] == {"1": 3, "3": 1} and stats["requests"] == 6


def test_a_failed_batch_fails_its_jobs_and_the_thread_goes_on(loaded, model_dir, gated):
    calls, busy, release = gated
    batcher = batcher_of(loaded, model_dir)
    release.set()
    with pytest.raises(RuntimeError, match="the model failed"):
        batcher.submit(["fail"]).result(timeout=60)
    assert batcher.submit([SOURCES[2]]).result(timeout=60)[0].text == TARGETS[2]


def test_one_beam_from_the_page_where_the_server_has_a_length_penalty(loaded, model_dir):
    """`gru-serve --num_beams 3 --length_penalty 0.5`: the page's slider at 1 beam is greedy search (a length
    penalty only weighs beams), and the API's alternatives take the server's."""
    batcher = batcher_of(loaded, model_dir, "--num_beams", "3", "--length_penalty", "0.5")
    greedy = batcher.submit(SOURCES[:3], 1, num_beams=1, attention=True).result(timeout=60)
    assert [t.text for t in greedy] == texts(loaded, SOURCES[:3])
    assert all(t.attention is not None for t in greedy)
    beams = batcher.submit(SOURCES[:1], 2).result(timeout=60)
    assert [t.text for t in beams] == texts(
        loaded, SOURCES[:1], num_beams=3, num_return_sequences=2, length_penalty=0.5
    )


# ---------------------------------------------------------------- the Space


# Runs the Space's app.py where the package cannot be imported, as on a Space: the model's own code alone
RUN_WITHOUT_THE_PACKAGE = (
    "import runpy, sys; sys.modules['modeling_gru_seq2seq'] = None; runpy.run_path(sys.argv[1], run_name='__main__')"
)


def test_the_written_space_runs_on_the_models_code_alone(model_dir, loaded, tmp_path):
    space = tmp_path / "space"
    command = [sys.executable, "-m", "modeling_gru_seq2seq.serve", str(model_dir), "--write_space", str(space)]
    result = subprocess.run([*command, "--model_id", "someone/fr-en"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in space.iterdir()) == ["README.md", "app.py", "requirements.txt"]
    readme = (space / "README.md").read_text()
    front_matter = readme.split("---\n")[1].splitlines()
    assert readme.startswith("---\n")
    assert {"sdk: gradio", "app_file: app.py", "- someone/fr-en"} <= set(front_matter)
    assert "MODEL_ID = 'someone/fr-en'" in (space / "app.py").read_text()
    assert "gradio" in (space / "requirements.txt").read_text().split()

    env = {
        "GRU_SEQ2SEQ_MODEL": str(model_dir),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "GRADIO_TEMP_DIR": str(tmp_path / "gradio"),
    }
    command = [sys.executable, "-c", RUN_WITHOUT_THE_PACKAGE, str(space / "app.py")]
    with served(model_dir, command=command, env=env, ready_path="/", cwd=str(tmp_path)) as url:
        text = f"{SOURCES[7]}\n\n{SOURCES[3]}\n{SOURCES[0]}"
        translations, line, heatmap = client(url, tmp_path).predict(text, 2, api_name="/translate_lines")
    assert translations == text_of(loaded, text, num_beams=2)
    assert translations.split("\n")[0] == TARGETS[7]
    assert line["choices"] == [[f"{i + 1}: {sentence}", i] for i, sentence in enumerate(text.split("\n"))]
    with Image.open(heatmap) as image:
        assert min(image.size) > 50


# ---------------------------------------------------------------- the command's errors


def command_error(argv: list[str], capsys, monkeypatch) -> str:
    """The one line `gru-serve argv` ends with (exit code 2, no traceback); it must not come to serve."""
    import uvicorn

    def refuse(*args, **kwargs):
        raise AssertionError("gru-serve went on to serve")

    monkeypatch.setattr(uvicorn, "run", refuse)
    try:
        code = serve.main(argv)
    except SystemExit as exit:  # argparse's errors
        code = exit.code
    captured = capsys.readouterr()
    assert code == 2 and "Traceback" not in captured.err + captured.out
    return [line for line in captured.err.splitlines() if line.strip()][-1]


def test_a_port_out_of_range(model_dir, capsys, monkeypatch):
    line = command_error([str(model_dir), "--port", "70000"], capsys, monkeypatch)
    assert line == "gru-serve: error: --port: got 70000, want 0 to 65535"


def test_a_port_taken(model_dir, capsys, monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = command_error([str(model_dir), "--port", str(port)], capsys, monkeypatch)
    assert line.startswith(f"error: --host 127.0.0.1 --port {port}: cannot listen there (")


def test_model_id_without_write_space(model_dir, capsys, monkeypatch):
    line = command_error([str(model_dir), "--model_id", "someone/fr-en"], capsys, monkeypatch)
    assert line.startswith("gru-serve: error: --model_id") and "--write_space" in line


def test_a_mistyped_model_path(model_dir, capsys, monkeypatch):
    mistyped = str(model_dir.parent / "modle")
    line = command_error([mistyped, "--port", "0"], capsys, monkeypatch)
    assert line.startswith(f"error: {mistyped}: no such model directory") and "model" in line.split("holds")[-1]


def test_write_space_of_a_local_folder_needs_a_model_id(model_dir, tmp_path, capsys, monkeypatch):
    line = command_error([str(model_dir), "--write_space", str(tmp_path / "space")], capsys, monkeypatch)
    assert line.startswith(f"error: --write_space: {model_dir} is a local folder") and "--model_id" in line
    assert not (tmp_path / "space").exists()
