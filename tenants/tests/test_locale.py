"""The institution's locale decides how its site writes dates."""

from django.utils import translation

from shared.core.testing import HostClient, host_of
from tenants.models import Institution


def test_each_institution_writes_dates_its_own_way(institution_a, institution_b):
    Institution.objects.filter(pk=institution_a.pk).update(locale="en-us")
    Institution.objects.filter(pk=institution_b.pk).update(locale="en-gb")
    from tenants.directory import directory

    directory.forget()
    HostClient(host_of(institution_a)).get("/")
    assert translation.get_language() == "en-us"
    HostClient(host_of(institution_b)).get("/")
    assert translation.get_language() == "en-gb"
    from django.utils.formats import get_format

    translation.activate("en-us")
    us = get_format("SHORT_DATE_FORMAT")
    translation.activate("en-gb")
    gb = get_format("SHORT_DATE_FORMAT")
    assert us != gb
