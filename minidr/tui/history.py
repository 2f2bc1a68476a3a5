"""The query history list (F8): Enter puts the query back into the editor."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option


class HistoryScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape,f8", "dismiss(None)", "Close")]

    def __init__(self, history: list[str]) -> None:
        super().__init__()
        self.history = list(reversed(history))

    def compose(self) -> ComposeResult:
        with Vertical(id="history-box", classes="dialog"):
            yield Label("Query history (newest first)", classes="dialog-title")
            yield OptionList(*[Option(" ".join(q.split()), id=str(k)) for k, q in enumerate(self.history)],
                             id="history-list")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.history[int(event.option.id)])
