"""The app's stylesheet: theme variables only, kept in Python so it ships with the package."""

from __future__ import annotations

CSS = """
/* podpath: theme variables only, so every theme (and the screenshots) stays consistent. */

Screen {
    background: $background;
}

#titlebar {
    height: 1;
    padding: 0 1;
    background: $boost;
}

#heading {
    width: 1fr;
    color: $accent;
    text-style: bold;
    padding: 0 1;
    height: 1;
}

#titlebar #heading {
    padding: 0;
}

#count {
    width: auto;
    color: $text-muted;
}

#podinfo, #trace-status, .subheading {
    height: 1;
    padding: 0 1;
    color: $text-muted;
}

/* Wraps (a long netns path), plus a line when the CNI plugin recorded host if, gateway, MTU,
   and one (which may wrap) when the pod's namespace has netfilter rules of its own. */
#podinfo {
    height: auto;
    max-height: 5;
}

.subheading {
    color: $primary;
    text-style: bold;
    background: $boost;
}

#filter {
    dock: bottom;
    height: 3;
    border: tall $accent;
    margin-bottom: 1;
}

#gaps {
    height: 1;
    padding: 0 1;
    background: $warning-muted;
    color: $text;
}

#note {
    height: 1;
    padding: 0 1;
    background: $warning-muted;
    color: $text;
}

#banner {
    height: 1;
    padding: 0 1;
    background: $success-muted;
    color: $text;
}

#banner.-problems {
    background: $error-muted;
    text-style: bold;
}

#facts {
    height: auto;
    max-height: 11;
    margin-bottom: 1;
}

RowTable {
    height: 1fr;
    background: $surface;
}

RowTable.half {
    height: auto;
    max-height: 50%;
    margin-bottom: 1;
}

RowTable.third {
    height: auto;
    max-height: 8;
}

#flow {
    height: auto;
    padding: 0 1;
    color: $text-muted;
}

#hop-detail {
    height: auto;
    max-height: 12;
    padding: 0 1;
    border-top: solid $primary;
    color: $text;
}

#trace-inputs {
    height: 3;
}

/* A short terminal (80x24): home's menu of views keeps all its rows; the facts after
   the first five (dataplane, iptables, ip_forward, taken: the header says when) scroll
   under the others. */
NodeScreen.-short #facts {
    max-height: 6;
    margin-bottom: 0;
}

/* A short terminal (80x24): the hops of the path keep most of the screen. */
TraceScreen.-short RowTable.third {
    max-height: 4;
}

TraceScreen.-short #hop-detail {
    max-height: 5;
}

TraceScreen.-short #flow {
    max-height: 2;
}

#trace-inputs Input {
    width: 2fr;
}

#trace-inputs Select {
    width: 14;
}

.-collecting #titlebar, .-collecting #banner {
    background: $warning-muted;
}

HelpScreen, JumpScreen, PromptScreen {
    align: center middle;
    background: $background 60%;
}

#help {
    width: 96%;
    max-width: 140;
    height: auto;
    max-height: 90%;
    border: thick $primary;
    background: $surface;
}

#help RowTable {
    height: auto;
    max-height: 40;
}

#help-title {
    height: 1;
    padding: 0 1;
    text-style: bold;
    color: $accent;
}

TextScreen {
    align: center middle;
    background: $background 60%;
}

#text-view {
    width: 100;
    height: 80%;
    border: thick $primary;
    background: $surface;
    padding: 0 1;
}

#text-title {
    text-style: bold;
    color: $accent;
}

#jump, #prompt {
    width: 80;
    height: auto;
    border: thick $accent;
    background: $surface;
    padding: 0 1;
}

#jump-hint, #prompt-question {
    color: $text-muted;
}

TabbedContent {
    height: 1fr;
}

TabPane {
    padding: 0;
}
"""
