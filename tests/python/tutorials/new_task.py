#!/usr/bin/env python
"""Tutorial 2, "Work queues": queues a task given on the command line.

Each dot in the message stands for one second of work for the worker.
"""
import os
import sys

import pika

url = os.environ.get('AMQP_URL', 'amqp://guest:guest@localhost:5672/%2F')
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()

# A durable queue survives a broker restart...
channel.queue_declare(queue='task_queue', durable=True)

message = ' '.join(sys.argv[1:]) or "Hello World!"
channel.basic_publish(
    exchange='',
    routing_key='task_queue',
    body=message,
    # ...and so do persistent messages stored in it.
    properties=pika.BasicProperties(
        delivery_mode=pika.DeliveryMode.Persistent,
    ))
print(f" [x] Sent {message}")
connection.close()
