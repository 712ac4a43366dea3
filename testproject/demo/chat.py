"""A Channels group consumer (imported only when Channels is installed).

Every connection joins the group "chat" and first receives ``{"pid": <its worker's pid>}``;
each text it sends is broadcast through the channel layer to every member, in whichever
process it is served, as ``{"text": ..., "from": <sender's pid>, "pid": <receiver's pid>}``.
With ``ASGISERVE_DEMO_HOST`` set (several hosts behind a load balancer), both messages also carry
``"host"`` (the receiver's) and broadcasts ``"from_host"`` (the sender's).
"""

import json
import os

from channels.generic.websocket import AsyncWebsocketConsumer

GROUP = "chat"
HOST = os.environ.get("ASGISERVE_DEMO_HOST", "")


def with_host(message: dict[str, object], **extra: object) -> dict[str, object]:
    """``message`` with this host's name (and ``extra``) when the host is named."""
    return {**message, "host": HOST, **extra} if HOST else message


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        if self.channel_layer is None:
            # No CHANNEL_LAYERS: there is no group to join.
            await self.close(code=4500)
            return
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()
        await self.send(text_data=json.dumps(with_host({"pid": os.getpid()})))

    async def disconnect(self, code):
        if self.channel_layer is not None:
            await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        await self.channel_layer.group_send(
            GROUP,
            {"type": "chat.message", "text": text_data, "from": os.getpid(), "from_host": HOST},
        )

    async def chat_message(self, event):
        message = {"text": event["text"], "from": event["from"], "pid": os.getpid()}
        await self.send(text_data=json.dumps(with_host(message, from_host=event["from_host"])))
