import django.db.models.deletion
from django.db import migrations, models


def plans_from_names(apps, schema_editor):
    """Each plan name tenants had becomes a Plan without limits: nobody's service changes."""
    Plan = apps.get_model("tenants", "Plan")
    Tenant = apps.get_model("tenants", "Tenant")
    for name in Tenant.objects.values_list("plan_name", flat=True).distinct():
        plan, _ = Plan.objects.get_or_create(name=name or "default")
        Tenant.objects.filter(plan_name=name).update(plan=plan)


def names_from_plans(apps, schema_editor):
    Tenant = apps.get_model("tenants", "Tenant")
    for tenant in Tenant.objects.select_related("plan"):
        tenant.plan_name = tenant.plan.name if tenant.plan else "free"
        tenant.save(update_fields=["plan_name"])


class Migration(migrations.Migration):

    dependencies = [
        ("tenants", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="Plan",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=40, unique=True)),
                ("monthly_event_quota", models.PositiveBigIntegerField(blank=True, help_text="Events processed per calendar month (UTC). Empty: no limit. Events over it are stored but held.", null=True)),
                ("retention_days", models.PositiveIntegerField(blank=True, help_text="Processed events received more than this many days ago are pruned. Empty: kept forever.", null=True)),
            ],
            options={
                "ordering": ["name"],
            },
        ),
        migrations.RenameField(model_name="tenant", old_name="plan", new_name="plan_name"),
        migrations.AddField(
            model_name="tenant",
            name="plan",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name="tenants", to="tenants.plan"),
        ),
        migrations.RunPython(plans_from_names, names_from_plans),
        migrations.RemoveField(model_name="tenant", name="plan_name"),
        migrations.CreateModel(
            name="MonthlyUsage",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("month", models.DateField(help_text="First day of the month")),
                ("processed", models.PositiveBigIntegerField(default=0)),
                ("held", models.PositiveBigIntegerField(default=0)),
                ("tenant", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="usage", to="tenants.tenant")),
            ],
            options={
                "ordering": ["-month"],
                "constraints": [models.UniqueConstraint(fields=("tenant", "month"), name="usage_one_row_per_month")],
            },
        ),
    ]
