"""The Leaderboard tab: policy checkpoints ranked from human votes between them.

The ranking is :func:`rlhf.services.leaderboard.leaderboard` (Bradley–Terry with bootstrap
intervals); this tab only lays it out. It is computed when the tab is opened or
refreshed, not on a timer: the bootstrap refits the model a few hundred times.
"""

import html

import gradio as gr

from feedback_ui.ui.access import UIContext, require
from feedback_ui.ui.render import message
from rlhf.services.leaderboard import leaderboard

HEADERS = ["Rank", "Checkpoint", "Status", "Rating", "95% interval", "Votes", "Wins", "Losses", "Ties"]
BOOTSTRAP = 200


def leaderboard_rows(ctx: UIContext, include_simulated: bool) -> tuple[list[list], str]:
    with ctx.session() as session:
        board = leaderboard(session=session, bootstrap=BOOTSTRAP, include_simulated=include_simulated)
    rows = []
    for s in board.standings:
        interval = f"{s.ci_low:.0f} – {s.ci_high:.0f}" if s.ci_low is not None and s.ci_high is not None else ""
        rows.append(
            [
                s.rank if s.rank is not None else "",
                f"{s.name} (#{s.checkpoint_id})",
                s.status,
                f"{s.rating:.0f}" if s.rating is not None else "unrated",
                interval,
                s.votes,
                s.wins,
                s.losses,
                s.ties,
            ]
        )
    if board.votes:
        note = (
            f"{board.votes} votes between responses of different checkpoints. Ratings are Elo-like: "
            "400 points mean 10:1 odds; the mean rated checkpoint is 1000."
        )
    else:
        note = (
            "No votes between different checkpoints yet: a checkpoint is rated once raters have compared "
            "its responses with another checkpoint's."
        )
    return rows, message(note)


def table_html(rows: list[list]) -> str:
    """The ranking as a plain table; on a phone each checkpoint becomes a card of labelled values
    (``.rl-board`` in static/rlhf.css), so all nine columns show without scrolling sideways."""
    head = "".join(f'<th scope="col">{html.escape(h)}</th>' for h in HEADERS)
    body = "".join(
        "<tr>"
        + "".join(f'<td data-label="{html.escape(h)}">{html.escape(str(v))}</td>' for h, v in zip(HEADERS, row))
        + "</tr>"
        for row in rows
    )
    if not rows:
        body = f'<tr><td colspan="{len(HEADERS)}">No checkpoints yet.</td></tr>'
    return (
        f'<div id="leaderboard-table" aria-label="Ranking"><table class="rl-board"><thead><tr>{head}</tr>'
        f"</thead><tbody>{body}</tbody></table></div>"
    )


def build_leaderboard_tab(ctx: UIContext) -> gr.Tab:
    with gr.Tab("Leaderboard", id="leaderboard") as tab:
        with gr.Row():
            include_simulated = gr.Checkbox(label="Include simulated raters' votes", value=False)
            refresh = gr.Button("Refresh", size="md", scale=0, min_width=120)
        note = gr.HTML()
        table = gr.HTML(table_html([]))

    def show(simulated: bool, request: gr.Request):
        require(ctx, request)
        rows, text = leaderboard_rows(ctx, simulated)
        return table_html(rows), text

    for trigger in (tab.select, refresh.click, include_simulated.change):
        trigger(show, inputs=[include_simulated], outputs=[table, note], api_visibility="private")
    return tab
