#!/usr/bin/env python
"""Tutorial 1, "Hello World!": the consumer.

Prints every message that arrives on the queue 'hello'.
"""
import os
import sys

import pika


def main():
    url = os.environ.get('AMQP_URL', 'amqp://guest:guest@localhost:5672/%2F')
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()

    # Declaring is idempotent: whichever program starts first creates it.
    channel.queue_declare(queue='hello')

    def callback(ch, method, properties, body):
        print(f" [x] Received {body}")

    channel.basic_consume(queue='hello', on_message_callback=callback, auto_ack=True)

    print(' [*] Waiting for messages. To exit press CTRL+C')
    channel.start_consuming()


if __name__ == '__main__':
    try:
        main()
    except KeyboardInterrupt:
        print('Interrupted')
        try:
            sys.exit(0)
        except SystemExit:
            os._exit(0)
