"""The pika side of the browser tests: declare, publish or consume on one queue.

    python pika_peer.py AMQP_URL declare QUEUE
    python pika_peer.py AMQP_URL publish QUEUE < bodies.json   (a JSON list of base64 bodies)
    python pika_peer.py AMQP_URL consume QUEUE COUNT           (prints such a list)
    python pika_peer.py AMQP_URL delete QUEUE

Publishing waits for the broker's confirms; consuming gives up after 10 s of silence.
"""

import base64
import json
import sys

import pika


def main() -> int:
    url, action, queue = sys.argv[1:4]
    params = pika.URLParameters(url)
    params.socket_timeout = 5
    params.blocked_connection_timeout = 10
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    try:
        if action == "declare":
            channel.queue_declare(queue)
        elif action == "delete":
            channel.queue_delete(queue)
        elif action == "publish":
            channel.confirm_delivery()
            for body in json.load(sys.stdin):
                channel.basic_publish("", queue, base64.b64decode(body))
        elif action == "consume":
            count = int(sys.argv[4])
            bodies = []
            for method, _props, body in channel.consume(
                queue, auto_ack=True, inactivity_timeout=10
            ):
                if method is None:
                    print(f"timed out after {len(bodies)} of {count}", file=sys.stderr)
                    return 1
                bodies.append(base64.b64encode(body).decode())
                if len(bodies) == count:
                    break
            channel.cancel()
            print(json.dumps(bodies))
        else:
            print(f"unknown action {action}", file=sys.stderr)
            return 2
    finally:
        connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
