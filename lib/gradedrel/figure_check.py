"""Text a reader can read: overlapping text boxes in a drawn matplotlib figure.

text_overlaps(fig)   draws the figure with its canvas's renderer and returns every pair of
                     drawn texts whose boxes overlap (titles, axis and tick labels,
                     annotations, legend entries and titles, colour-bar labels, heatmap
                     cell labels), and every heatmap cell label that runs out of its cell
check_figure(fig)    the same, then warns or raises as GRADEDREL_FIGURE_CHECK says:
                     "strict" raises FigureTextError, "off" skips the check, anything else
                     (the default) warns (results.save_figure calls it on every figure)

Compared are the texts the renderer actually drew, each with its own text box
(`Text.get_window_extent`). Not compared: a text with itself; empty or whitespace-only
texts; texts that were not drawn (invisible, in a hidden axes, tick labels outside the view
limits, annotations clipped away); patches: a legend's frame, a text's bbox patch and an
annotation's arrow are not text (an annotation counts by its text alone). Two boxes overlap
when they share at least `min_overlap_pt` points in both directions (1 pt by default: text
boxes that merely touch, or share a hair of their line spacing, pass). A cell label is a
text placed in data coordinates inside an image (imshow) or a rectilinear mesh (pcolormesh,
seaborn's heatmap) of its axes; it must stay inside that cell, give or take the same
tolerance.
"""
from __future__ import annotations

import os
import warnings
from typing import NamedTuple

import numpy as np

ENV = "GRADEDREL_FIGURE_CHECK"


class FigureTextError(ValueError):
    """Text in a figure overlaps other text or leaves its heatmap cell."""


class FigureTextWarning(UserWarning):
    pass


def _plain(text: str) -> str:
    """A text as a reader sees it, roughly: '$\\mathdefault{3\\times10^{1}}$' -> '3×10^{1}'."""
    if text.count("$") >= 2:
        text = (text.replace("$", "").replace("\\mathdefault{", "{").replace("\\times", "×")
                .replace("\\minus", "−"))
        while text.startswith("{") and text.endswith("}"):
            text = text[1:-1]
    return text


class TextProblem(NamedTuple):
    kind: str               # "overlap" | "outside cell"
    first: str
    second: str             # the other text, or the cell
    width_pt: float         # by how much, in points (overlap; or the run-out, horizontally
    height_pt: float        # and vertically)

    def __str__(self):
        if self.kind == "overlap":
            return (f"{self.first!r} overlaps {self.second!r} "
                    f"({self.width_pt:.1f} x {self.height_pt:.1f} pt)")
        return (f"{self.first!r} runs out of its {self.second} "
                f"(by {self.width_pt:.1f} pt across, {self.height_pt:.1f} pt down)")


def drawn_texts(fig):
    """([(text artist, its window extent in pixels)], pixels a point): every text the
    renderer drew, once each, after one full draw of the figure on its own canvas's renderer
    (a text counts as drawn when its draw reached the renderer's draw_text or draw_tex, or
    those of the path-effect renderer that draws a text with a halo or shadow)."""
    from matplotlib.backend_bases import RendererBase
    from matplotlib.patheffects import PathEffectRenderer
    from matplotlib.text import Text

    canvas = fig.canvas
    if not hasattr(canvas, "get_renderer"):     # a canvas without a raster renderer
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        canvas = FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    drawn, calls = [], [0]
    original_draw = Text.draw
    original_text, original_tex = renderer.draw_text, renderer.draw_tex

    def counting_text(*args, **kwargs):
        calls[0] += 1
        return original_text(*args, **kwargs)

    def counting_tex(*args, **kwargs):
        calls[0] += 1
        return original_tex(*args, **kwargs)

    def counting_effect_text(self, *args, **kwargs):
        calls[0] += 1
        return RendererBase.draw_text(self, *args, **kwargs)

    def counting_effect_tex(self, *args, **kwargs):
        calls[0] += 1
        return RendererBase.draw_tex(self, *args, **kwargs)

    def recording_draw(self, renderer_):
        before = calls[0]
        result = original_draw(self, renderer_)
        if calls[0] > before and self.get_text().strip():
            drawn.append((self, Text.get_window_extent(self, renderer_)))
        return result

    recording_draw._supports_rasterization = True
    Text.draw = recording_draw
    renderer.draw_text, renderer.draw_tex = counting_text, counting_tex
    effect_methods = {name: vars(PathEffectRenderer).get(name) for name in ("draw_text", "draw_tex")}
    PathEffectRenderer.draw_text, PathEffectRenderer.draw_tex = counting_effect_text, counting_effect_tex
    try:
        fig.draw(renderer)
    finally:
        Text.draw = original_draw
        del renderer.draw_text, renderer.draw_tex
        for name, method in effect_methods.items():
            if method is None:
                delattr(PathEffectRenderer, name)
            else:
                setattr(PathEffectRenderer, name, method)
    unique, seen = [], set()
    for text, box in drawn:                     # a text drawn twice counts once
        if id(text) not in seen:
            seen.add(id(text))
            unique.append((text, box))
    return unique, fig.dpi / 72.0


def _cells(ax):
    """Each image or rectilinear mesh of an axes as (x edges, y edges), in data units."""
    from matplotlib.collections import QuadMesh
    from matplotlib.image import AxesImage

    grids = []
    for artist in ax.get_children():
        if not artist.get_visible():
            continue
        if isinstance(artist, AxesImage):
            array = artist.get_array()
            if array is None:
                continue
            left, right, bottom, top = artist.get_extent()
            grids.append((np.linspace(left, right, array.shape[1] + 1),
                          np.linspace(bottom, top, array.shape[0] + 1)))
        elif isinstance(artist, QuadMesh):
            coords = np.asarray(artist.get_coordinates())
            xs, ys = coords[..., 0], coords[..., 1]
            if np.allclose(xs, xs[:1]) and np.allclose(ys, ys[:, :1]):   # rectilinear only
                grids.append((xs[0], ys[:, 0]))
    return grids


def _cell_of(text, grids):
    """The (x0, x1, y0, y1) data-unit cell of a grid that holds a text's anchor, or None."""
    x, y = text.get_position()
    for xe, ye in grids:
        for edges, v in ((xe, x), (ye, y)):
            if not (min(edges[0], edges[-1]) <= v <= max(edges[0], edges[-1])):
                break
        else:
            xs, ys = np.sort(xe), np.sort(ye)
            i = min(max(np.searchsorted(xs, x, side="right") - 1, 0), len(xs) - 2)
            j = min(max(np.searchsorted(ys, y, side="right") - 1, 0), len(ys) - 2)
            return xs[i], xs[i + 1], ys[j], ys[j + 1]
    return None


def text_overlaps(fig, min_overlap_pt: float = 1.0) -> list[TextProblem]:
    """Every pair of drawn texts of `fig` whose boxes overlap by at least `min_overlap_pt`
    points both across and down, and every heatmap cell label that runs out of its cell by
    more than that (the module's docstring says what is compared and what is not)."""
    texts, px_per_pt = drawn_texts(fig)
    tolerance = min_overlap_pt * px_per_pt
    problems = []
    if texts:
        boxes = np.array([[b.x0, b.y0, b.x1, b.y1] for _, b in texts])
        width = (np.minimum(boxes[:, None, 2], boxes[None, :, 2])
                 - np.maximum(boxes[:, None, 0], boxes[None, :, 0]))
        height = (np.minimum(boxes[:, None, 3], boxes[None, :, 3])
                  - np.maximum(boxes[:, None, 1], boxes[None, :, 1]))
        hit = (width >= tolerance) & (height >= tolerance)
        for i, j in zip(*np.nonzero(np.triu(hit, k=1))):
            first, second = (_plain(texts[k][0].get_text()) for k in (i, j))
            problems.append(TextProblem("overlap", first, second,
                                        float(width[i, j] / px_per_pt),
                                        float(height[i, j] / px_per_pt)))
    grids = {}
    for text, box in texts:
        ax = text.axes
        if ax is None or text.get_transform() is not ax.transData:
            continue
        if ax not in grids:
            grids[ax] = _cells(ax)
        cell = _cell_of(text, grids[ax]) if grids[ax] else None
        if cell is None:
            continue
        x0, x1, y0, y1 = cell
        (cx0, cy0), (cx1, cy1) = ax.transData.transform([(x0, y0), (x1, y1)])
        cx0, cx1, cy0, cy1 = min(cx0, cx1), max(cx0, cx1), min(cy0, cy1), max(cy0, cy1)
        across = max(cx0 - box.x0, box.x1 - cx1, 0.0)
        down = max(cy0 - box.y0, box.y1 - cy1, 0.0)
        if across > tolerance or down > tolerance:
            problems.append(TextProblem("outside cell", _plain(text.get_text()), "heatmap cell",
                                        float(across / px_per_pt), float(down / px_per_pt)))
    return problems


def check_figure(fig, name: str = "figure", mode: str | None = None,
                 stacklevel: int = 2) -> list[TextProblem]:
    """Run text_overlaps on `fig`; with problems, raise FigureTextError (mode "strict") or
    warn (any other mode but "off"), the warning attributed `stacklevel` frames up (2: the
    caller; save_figure keeps that, so that a notebook's rendered warning names a library
    line, not a kernel's temporary file). `mode` defaults to $GRADEDREL_FIGURE_CHECK."""
    mode = (mode or os.environ.get(ENV) or "warn").strip().lower()
    if mode == "off":
        return []
    problems = text_overlaps(fig)
    if problems:
        shown = "\n  ".join(str(p) for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        message = (f"{name}: {len(problems)} text(s) overlap or leave their cell at the size the "
                   f"figure is drawn:\n  {shown}{more}")
        if mode == "strict":
            raise FigureTextError(message + f"\n({ENV}=strict)")
        warnings.warn(message, FigureTextWarning, stacklevel=stacklevel)
    return problems
