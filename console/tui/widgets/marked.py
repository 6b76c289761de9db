"""A button and a checkbox whose state reads without colour (NO_COLOR, a 16-colour terminal).

Textual shows the focused button by reverse video and an unticked checkbox by a dim "X" on a
dark block: with NO_COLOR the focused Approve looked like Cancel, and the unticked box was
black on black. Here the focus is a mark (U+203A) before the label and the box is ``[x]`` or ``[ ]``,
drawn as text; colour only adds to them.
"""

from __future__ import annotations

from textual.content import Content
from textual.geometry import Size
from textual.widgets import Button, Checkbox

FOCUS_MARK = "\u203a "  # a single right-pointing angle quotation mark
NO_MARK = "  "


class MarkedButton(Button):
    """A button with the focus mark before its label while focused (its width never changes)."""

    def render(self) -> Content:
        label = self.label if isinstance(self.label, Content) else Content(str(self.label))
        return Content.assemble(FOCUS_MARK if self.has_focus else NO_MARK, label)

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return super().get_content_width(container, viewport) + len(FOCUS_MARK)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()


class TickBox(Checkbox):
    """A checkbox drawn as ``[x]`` / ``[ ]``, with the focus mark before it."""

    @property
    def _button(self) -> Content:
        mark = FOCUS_MARK if self.has_focus else NO_MARK
        return Content(f"{mark}[{'x' if self.value else ' '}]")

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
