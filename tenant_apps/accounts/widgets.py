"""Form widgets of the accounts pages."""

from django import forms
from django.forms.utils import flatatt
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe


class ManyOptionsSelect(forms.Select):
    """A `<select>` written out in Python instead of through one template render per `<option>`.

    Django's Select renders each option with its own template: for the ~600 time zones of the
    profile and sign-up forms that was most of the page's server time. The HTML is the same as
    Select's (no per-option attributes); choices with option groups fall back to Select.
    """

    def render(self, name, value, attrs=None, renderer=None) -> SafeString:
        choices = list(self.choices)
        if any(isinstance(label, list | tuple) for _, label in choices):
            return super().render(name, value, attrs, renderer)
        chosen = set(self.format_value(value))
        options = []
        has_selected = False
        for option_value, label in choices:
            text = "" if option_value is None else str(option_value)
            selected = not has_selected and text in chosen
            has_selected |= selected
            options.append(
                f'<option value="{escape(text)}"{" selected" if selected else ""}>{escape(label)}</option>'
            )
        final_attrs = self.build_attrs(self.attrs, attrs)
        return mark_safe(  # noqa: S308 - every value above is escaped
            f'<select name="{escape(name)}"{flatatt(final_attrs)}>\n' + "\n".join(options) + "\n</select>"
        )
