"""The embedded broker: kombu's filesystem transport with atomic message writes.

kombu writes a message file in place, so a consumer polling the folder can take the file before
its bytes are there, fail to decode it and lose the message. Here each message is written under
a hidden name and renamed into the queue folder once complete (a rename is atomic on POSIX).
"""

import os
import uuid
from time import monotonic

from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        filename = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, filename)
        # A leading dot keeps the partial file out of every queue's listing (see Channel._get).
        partial = os.path.join(self.data_folder_out, f".{filename}.part")
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
