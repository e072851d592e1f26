#!/usr/bin/env python
"""Tutorial 1, "Hello World!": the producer.

Sends a single message to the queue named 'hello' through the default exchange.
"""
import os

import pika

url = os.environ.get('AMQP_URL', 'amqp://guest:guest@localhost:5672/%2F')
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()

# Make sure the queue exists before we send to it.
channel.queue_declare(queue='hello')

channel.basic_publish(exchange='', routing_key='hello', body='Hello World!')
print(" [x] Sent 'Hello World!'")

connection.close()
