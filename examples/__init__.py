"""Runnable evkafka examples; each module defines an `app`. The test suite runs every one."""
