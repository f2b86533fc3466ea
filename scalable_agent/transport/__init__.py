"""Actor -> learner transport over TensorFlow's own gRPC runtime.

IMPALA actors run in separate processes (possibly on other machines). Each one
sends whole unrolls to a bounded FIFO queue hosted by the learner and pulls the
newest parameters from the learner. The released TF1 scalable_agent did this
with a TF1 cluster (a `tf.FIFOQueue` with a shared name on the learner task and
variables read through the distributed runtime). TF2 has no such cluster for
eager programs, so this package rebuilds the two channels on
`tf.distribute.experimental.rpc`: a gRPC server that runs registered
`tf.function`s. Only TensorProtos cross the network (no pickle, nothing that
can run code when decoded).

  learner:  server = LearnerServer(address, unroll_specs, capacity, variables)
            for batch in server.dataset(batch_size): ...; server.publish(step)
  actor:    client = ActorClient(address, unroll_specs)
            client.fetch_parameters(known_version); client.send(unrolls)
  in one process: UnrollQueue(unroll_specs, capacity), what the server wraps.

Modules (the design notes and figures are in BUILD_NOTES.md, transport
section):

  specs:     the unroll structure (`unroll_specs`), its validation, its
             description and the check of unrolls against it.
  queue:     `UnrollQueue`, the learner's FIFO of unrolls and its tf.data view.
  protocol:  the wire: RPC methods, message size limit, encoding, status codes.
  server:    `LearnerServer`: the queue and parameter snapshots over RPC;
             backpressure and exactly-once enqueues on the learner's side.
  validation: the learner's in-graph checks of received messages
             (well-formed, dtype, declared shape, content, values).
  client:    `ActorClient`: splitting into messages, exactly-once sends,
             parameter fetches, reconnection.
  addresses: free ports and 'host:port' parsing.
  errors:    the exceptions raised to callers.
"""

from scalable_agent.transport.addresses import free_port
from scalable_agent.transport.client import ActorClient
from scalable_agent.transport.client import Parameters
from scalable_agent.transport.errors import LearnerClosedError
from scalable_agent.transport.errors import LearnerUnavailableError
from scalable_agent.transport.errors import TransportError
from scalable_agent.transport.errors import UnrollRejectedError
from scalable_agent.transport.protocol import LearnerInfo
from scalable_agent.transport.protocol import MAX_MESSAGE_BYTES
from scalable_agent.transport.queue import UnrollQueue
from scalable_agent.transport.server import LearnerServer
from scalable_agent.transport.specs import describe_specs

__all__ = [
    'ActorClient',
    'LearnerClosedError',
    'LearnerInfo',
    'LearnerServer',
    'LearnerUnavailableError',
    'MAX_MESSAGE_BYTES',
    'Parameters',
    'TransportError',
    'UnrollQueue',
    'UnrollRejectedError',
    'describe_specs',
    'free_port',
]
