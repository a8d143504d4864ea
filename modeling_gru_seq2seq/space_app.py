"""A Hugging Face Space for a gru-seq2seq translation model: `gru-serve MODEL --write_space DIR --model_id HUB_ID`
writes this file as `DIR/app.py` with `MODEL_ID` set.

It runs on the model's own code alone (`trust_remote_code`: the package is not installed on a Space): the
pipeline saved with the model translates, and its `cross_attention` gives the attention each output word paid,
drawn here. `GRU_SEQ2SEQ_MODEL`, when set, names a local model folder to serve instead (for a test).
"""

import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr
import matplotlib
import numpy as np
import torch
from transformers import pipeline

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402

MODEL_ID = None  # written by gru-serve --write_space
MAX_LINES = 64

translator = pipeline("translation", model=os.environ.get("GRU_SEQ2SEQ_MODEL") or MODEL_ID, trust_remote_code=True)
model, tokenizer = translator.model.eval(), translator.tokenizer
cross_attention = sys.modules[type(translator).__module__].cross_attention  # the model's pipeline file holds it


def heatmap(source_tokens: list[str], output_tokens: list[str], attention: np.ndarray) -> np.ndarray:
    """The tutorial's heatmap (output words down, source words across) as an RGB image."""
    figure, axes = plt.subplots(figsize=(1 + 0.45 * len(source_tokens), 1 + 0.4 * len(output_tokens)))
    image = axes.matshow(attention, cmap="bone", vmin=0.0, vmax=1.0)
    figure.colorbar(image)
    axes.xaxis.set_major_locator(ticker.FixedLocator(range(len(source_tokens))))
    axes.yaxis.set_major_locator(ticker.FixedLocator(range(len(output_tokens))))
    axes.set_xticklabels(source_tokens, rotation=90)
    axes.set_yticklabels(output_tokens)
    figure.tight_layout()
    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    plt.close(figure)
    return pixels


@torch.no_grad()
def translate_lines(text: str, beams: float):
    """Translations of the lines of `text` (a blank line gives an empty one: output line `i` answers input line
    `i`), the line chooser, the first line's heatmap, and what the heatmaps need."""
    lines = (text or "").splitlines()
    if len(lines) > MAX_LINES:
        raise gr.Error(f"{len(lines)} lines, over the limit of {MAX_LINES}")
    rows = [i for i, line in enumerate(lines) if not tokenizer.is_blank(line)]  # the lines to translate
    if not rows:
        return "", gr.update(choices=[], value=None), None, []
    sentences = [lines[i] for i in rows]
    inputs = tokenizer(sentences, padding=True, truncation=True, return_tensors="pt").to(model.device)
    sequences = model.generate(**inputs, num_beams=int(beams))
    attention = cross_attention(model, inputs["input_ids"], inputs["attention_mask"], sequences).cpu().numpy()
    views = [None] * len(lines)
    for row, line_index in enumerate(rows):
        source_length = int(inputs["attention_mask"][row].sum())
        generated = sequences[row, 1:].tolist()
        length = generated.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in generated else len(generated)
        source_ids = inputs["input_ids"][row, :source_length].tolist()
        source_tokens = tokenizer.convert_ids_to_tokens(source_ids, use_source_tokenizer=True)
        output_tokens = tokenizer.convert_ids_to_tokens(generated[:length])
        views[line_index] = (source_tokens, output_tokens, attention[row, :length, :source_length])
    texts = [""] * len(lines)
    for line_index, translated in zip(rows, tokenizer.batch_decode(sequences, skip_special_tokens=True), strict=True):
        texts[line_index] = translated
    choices = [(f"{i + 1}: {line}", i) for i, line in enumerate(lines)]
    return "\n".join(texts), gr.update(choices=choices, value=0), show_line(0, views), views


def show_line(index, views):
    """The heatmap of line `index` (`None` for a blank line)."""
    if index is None or not 0 <= int(index) < len(views) or views[int(index)] is None:
        return None
    return heatmap(*views[int(index)])


with gr.Blocks(title="gru-seq2seq translator", analytics_enabled=False) as demo:
    source, target = tokenizer.source_lang, tokenizer.target_lang
    gr.Markdown(f"## gru-seq2seq: {source} -> {target}\n`{MODEL_ID or os.environ.get('GRU_SEQ2SEQ_MODEL')}`")
    with gr.Row():
        text = gr.Textbox(label=f"{source}, one sentence per line", lines=6, elem_id="source")
        translations = gr.Textbox(label=target, lines=6, interactive=False, elem_id="translations")
    with gr.Row():
        beams = gr.Slider(1, 10, value=1, step=1, label="beams", elem_id="beams")
        button = gr.Button("Translate", variant="primary", elem_id="translate")
    line = gr.Dropdown(label="attention of line", choices=[], interactive=True, elem_id="line")
    image = gr.Image(
        label="attention", type="numpy", interactive=False, elem_id="heatmap", buttons=["download", "fullscreen"]
    )
    kept = gr.State([])
    button.click(translate_lines, [text, beams], [translations, line, image, kept], api_name="translate_lines")
    line.input(show_line, [line, kept], image, api_name=False)

if __name__ == "__main__":
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
        theme=gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["monospace"]),
    )
