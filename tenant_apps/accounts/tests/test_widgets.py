"""ManyOptionsSelect writes the same <select> as Django's Select, without a template per option."""

import re

from django import forms

from ..forms import ProfileForm, timezone_choices
from ..widgets import ManyOptionsSelect

OPTION = re.compile(r'<option value="([^"]*)"( selected)?>([^<]*)</option>')


def options(html: str) -> list[tuple[str, bool, str]]:
    return [(value, bool(selected), label) for value, selected, label in OPTION.findall(html)]


def test_the_time_zone_menu_is_what_djangos_select_writes():
    form = ProfileForm(initial={"full_name": "Lee", "timezone": "Asia/Kolkata", "phone": ""})
    fast = str(form["timezone"])
    form.fields["timezone"].widget = forms.Select(choices=form.fields["timezone"].choices)
    slow = str(form["timezone"])
    assert options(fast) == options(slow)
    assert len(options(fast)) == len(timezone_choices()) > 300
    assert [value for value, selected, _ in options(fast) if selected] == ["Asia/Kolkata"]
    assert ("America/Argentina/Buenos_Aires", False, "America/Argentina/Buenos Aires") in options(fast)
    opening = fast.split(">", 1)[0]
    assert 'name="timezone"' in opening and 'id="id_timezone"' in opening


def test_values_and_labels_are_escaped_and_one_option_is_selected():
    widget = ManyOptionsSelect(choices=[('a"b', "<x>"), ("same", "One"), ("same", "Two")])
    html = widget.render("field", "same", attrs={"id": "f", "required": True, "disabled": False})
    assert '<option value="a&quot;b">&lt;x&gt;</option>' in html
    assert html.count(" selected") == 1 and '<option value="same" selected>One</option>' in html
    assert html.startswith('<select name="field"') and ' id="f"' in html and " required" in html
    assert "disabled" not in html


def test_grouped_choices_fall_back_to_djangos_select():
    grouped = [("Europe", [("Europe/Paris", "Paris"), ("Europe/Rome", "Rome")])]
    html = ManyOptionsSelect(choices=grouped).render("tz", "Europe/Rome")
    assert '<optgroup label="Europe">' in html and "selected" in html
