#!/usr/bin/env python
"""Tutorial 5, "Topics": sends a message with a "<facility>.<severity>"
routing key to the 'topic_logs' exchange.

usage: emit_log_topic.py [routing.key] [message...]
"""
import os
import sys

import pika

url = os.environ.get('AMQP_URL', 'amqp://guest:guest@localhost:5672/%2F')
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()

channel.exchange_declare(exchange='topic_logs', exchange_type='topic')

routing_key = sys.argv[1] if len(sys.argv) > 1 else 'anonymous.info'
message = ' '.join(sys.argv[2:]) or 'Hello World!'
channel.basic_publish(exchange='topic_logs', routing_key=routing_key, body=message)
print(f" [x] Sent {routing_key}:{message}")
connection.close()
