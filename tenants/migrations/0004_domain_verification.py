from django.db import migrations, models
from django.db.models.functions import Now


def verify_existing(apps, schema_editor):
    """Every domain that served before verification existed keeps serving."""
    Domain = apps.get_model("tenants", "Domain")
    Domain.objects.filter(verified_at__isnull=True).update(verified_at=Now())


class Migration(migrations.Migration):
    dependencies = [("tenants", "0003_hide_powered_by")]

    operations = [
        migrations.AddField(
            model_name="domain", name="verification_token", field=models.CharField(blank=True, max_length=64)
        ),
        migrations.AddField(model_name="domain", name="verified_at", field=models.DateTimeField(blank=True, null=True)),
        migrations.AddField(
            model_name="domain", name="last_checked_at", field=models.DateTimeField(blank=True, null=True)
        ),
        migrations.AddField(
            model_name="domain", name="last_check_error", field=models.CharField(blank=True, max_length=200)
        ),
        migrations.RunPython(verify_existing, migrations.RunPython.noop),
        migrations.AddField(
            model_name="institution",
            name="locale",
            field=models.CharField(
                choices=[
                    ("en-gb", "English (UK)"),
                    ("en-us", "English (US)"),
                    ("en-in", "English (India)"),
                    ("en-au", "English (Australia)"),
                ],
                default="en-gb",
                max_length=10,
            ),
        ),
    ]
