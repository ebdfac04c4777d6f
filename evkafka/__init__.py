"""evkafka: typed endpoints for Kafka events, behind a composable middleware stack."""

from evkafka.app import EVKafkaApp
from evkafka.handler import Handler
from evkafka.message import Message
from evkafka.middleware import Middleware
from evkafka.middleware.errors import ErrorPolicy
from evkafka.producer import EVKafkaProducer
from evkafka.request import Request
from evkafka.sender import Sender
from evkafka.state import State
from evkafka.testclient import TestClient

__version__ = "0.8.0"

__all__ = [
    "EVKafkaApp",
    "EVKafkaProducer",
    "ErrorPolicy",
    "Handler",
    "Message",
    "Middleware",
    "Request",
    "Sender",
    "State",
    "TestClient",
    "__version__",
]
