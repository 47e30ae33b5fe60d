#!/usr/bin/env python
import os
import sys

if sys.version_info < (3, 12):
    sys.exit("BillingWatch needs Python 3.12 or newer (see .python-version).")


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billingwatch.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
