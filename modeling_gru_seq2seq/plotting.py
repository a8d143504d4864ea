"""Figures: the training curve and the tutorial's attention heatmap (`show_attention`).

matplotlib is a requirement of the package (not of the model's travelling code): where it was removed,
`matplotlib_available()` is False and callers skip their plots with a one-line note.
"""

import importlib.util

import numpy as np


def matplotlib_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_attention(input_words: list[str], output_words: list[str], attentions: np.ndarray, path=None):
    """The tutorial's heatmap: rows are output words, columns input words (with `<eos>`), a colour bar.

    Args:
        input_words: source words, `<eos>` included (one column each).
        output_words: generated words (one row each).
        attentions: `(len(output_words), len(input_words))` weights, each row summing to 1.
        path: where to save a PNG; the figure is returned (and closed when saved).
    """
    from matplotlib import ticker

    plt = _pyplot()
    attentions = np.asarray(attentions, dtype=float)
    if attentions.shape != (len(output_words), len(input_words)):
        raise ValueError(
            f"attention shape {attentions.shape} does not match {len(output_words)} output and "
            f"{len(input_words)} input words"
        )
    figure, axes = plt.subplots(figsize=(1 + 0.45 * len(input_words), 1 + 0.4 * len(output_words)))
    image = axes.matshow(attentions, cmap="bone", vmin=0.0, vmax=1.0)
    figure.colorbar(image)
    axes.xaxis.set_major_locator(ticker.FixedLocator(range(len(input_words))))
    axes.yaxis.set_major_locator(ticker.FixedLocator(range(len(output_words))))
    axes.set_xticklabels(input_words, rotation=90)
    axes.set_yticklabels(output_words)
    figure.tight_layout()
    if path is not None:
        figure.savefig(path)
        plt.close(figure)
    return figure


def plot_loss(log_history: list[dict], path) -> None:
    """Training and evaluation loss against the global step, from `trainer.state.log_history`."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4))
    for key, label in (("loss", "training loss"), ("eval_loss", "evaluation loss")):
        points = [(entry["step"], entry[key]) for entry in log_history if key in entry]
        if points:  # markers where points are few: a single logged loss is still seen
            marker = "." if key == "eval_loss" or len(points) < 20 else None
            axes.plot(*zip(*points, strict=True), marker=marker, label=label)
    axes.set_xlabel("step")
    axes.set_ylabel("cross-entropy per target token")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def attention_image(input_words: list[str], output_words: list[str], attentions: np.ndarray) -> np.ndarray:
    """`plot_attention`'s heatmap as an RGB image, `(height, width, 3)` `uint8` (for a web page)."""
    plt = _pyplot()
    figure = plot_attention(input_words, output_words, attentions)
    try:
        figure.canvas.draw()
        return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    finally:
        plt.close(figure)
