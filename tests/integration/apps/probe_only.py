"""An app with health probes and no consumers (no broker needed): HTTP_PORT sets its port."""

from __future__ import annotations

import os

from evkafka import EVKafkaApp

app = EVKafkaApp(expose_health=True, http_host="127.0.0.1", http_port=int(os.environ["HTTP_PORT"]))
