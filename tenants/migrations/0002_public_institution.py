"""The platform itself: the row django-tenants resolves the platform host to (schema public)."""

from django.db import migrations


def create_public(apps, schema_editor):
    Institution = apps.get_model("tenants", "Institution")
    Institution.objects.get_or_create(
        schema_name="public",
        defaults={"name": "PeerLearn", "slug": "public", "country": "US", "currency": "USD"},
    )


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]

    operations = [migrations.RunPython(create_public, migrations.RunPython.noop)]
