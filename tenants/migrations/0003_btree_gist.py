"""btree_gist, in the public schema: every institution's exclusion constraints use it."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tenants", "0002_public_institution")]

    operations = [
        migrations.RunSQL(
            "CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public",
            reverse_sql=migrations.RunSQL.noop,
        )
    ]
