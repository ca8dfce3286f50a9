"""The report page of `adapt`: the cross-validated figures, then every image before and after, worst after
first. Each picture is the out-of-fold prediction (yellow) against the truth (cyan)."""

from __future__ import annotations

import base64
from html import escape

import numpy as np

from skinseg.data.images import decode_rgb
from skinseg.reporting.figures import shrink
from skinseg.reporting.html import overlay_jpeg, page

MAX_PICTURED = 300  # rows with pictures; the rest are listed with their figures alone


def _picture(mask: np.ndarray, truth: np.ndarray, image: np.ndarray, alt: str) -> str:
    data = base64.b64encode(overlay_jpeg(mask, truth, image)).decode()
    return f'<img src="data:image/jpeg;base64,{data}" alt="{escape(alt)}">'


def _estimates_table(result) -> str:
    rows = "".join(
        f"<tr><th>{escape(e.name)}{' (chosen)' if e.name == result.chosen else ''}</th><td>{e.dice:.4f}</td>"
        f"<td>{e.dice_interval[0]:.4f}-{e.dice_interval[1]:.4f}</td><td>{e.gain:+.4f}</td>"
        f"<td>{e.gain_interval[0]:+.4f} to {e.gain_interval[1]:+.4f}</td></tr>"
        for e in result.estimates
    )
    return (
        '<table class="metrics"><tr><th>candidate</th><th>Dice</th><th>95% interval</th><th>gain</th>'
        f"<th>gain's 95% interval</th></tr>{rows}</table>"
    )


def adapt_page(result, pictures) -> str:
    """The page; `pictures(row)` gives (before mask, after mask, truth) at report size for an image's row."""
    body = []
    for rank, case in enumerate(result.cases, 1):
        cells = "<td></td><td></td>"
        if rank <= MAX_PICTURED:
            before, after, truth = pictures(case["row"])
            image = shrink(decode_rgb(case["image"])[0], max(truth.shape))
            name = case["id"]
            cells = "".join(
                f"<td>{_picture(mask, truth, image, f'{name} {label}')}</td>"
                for mask, label in ((before, "before"), (after, "after"))
            )
        gain = case["after"] - case["before"]
        body.append(
            f'<tr data-rank="{rank}"><td data-v="{rank}">{rank}</td><td data-v="{escape(case["id"])}">'
            f'{escape(case["id"])}</td>{cells}<td data-v="{case["before"]}">{case["before"]:.4f}</td>'
            f'<td data-v="{case["after"]}">{case["after"]:.4f}</td><td data-v="{gain}">{gain:+.4f}</td></tr>'
        )
    notes = "".join(f"<li>{escape(note)}</li>" for note in result.notes)
    recipe = f"; fine-tune recipe {escape(str(result.recipe.to_dict()))}" if result.recipe else ""
    top = (
        f"<p>{result.images} labelled images, cross-validated; written: <b>{escape(result.chosen)}</b>, threshold "
        f"{result.threshold:g}, boundary offset {result.boundary_offset:+g} of the lesion's diameter{recipe}."
        " Pictures: out-of-fold prediction yellow, your outline cyan.</p>"
        + _estimates_table(result)
        + (f"<ul>{notes}</ul>" if notes else "")
    )
    cases = (
        '<h2>Images, worst after adapting first</h2><p><input id="worst" type="number" min="1" '
        f'value="{len(result.cases)}"> rows shown.</p><table id="cases"><thead><tr><th>rank</th><th>image</th>'
        "<th>before</th><th>after</th><th>Dice before</th><th>Dice after</th><th>gain</th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )
    return page("skinseg adapt", top, cases)
