"""'host:port' addresses and ports of the learner's RPC server."""

import errno
import socket


def free_port(host='localhost'):
  """Returns a TCP port that is free on `host` right now.

  tf rpc's server can bind port 0 (the kernel picks a port), but it has no way
  to report which port it got. So `LearnerServer` picks a port with this
  function when asked for port 0 and checks, once started, that it really
  serves that port (another process could take it in between).

  Args:
    host: Host name or address to bind.

  Returns:
    An int port number.
  """
  family = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0][0]
  with socket.socket(family, socket.SOCK_STREAM) as s:
    s.bind((host, 0))
    return s.getsockname()[1]


def split_address(address):
  """Splits 'host:port' (host may be '[::]' or '[::1]') into (host, port).

  Raises:
    ValueError: `address` is not of that form.
  """
  host, sep, port = address.rpartition(':')
  if not sep or not port.isdigit():
    raise ValueError(f'Address {address!r} is not of the form host:port.')
  return host, int(port)


def check_port_is_free(host, port):
  """Raises OSError if something already listens on host:port.

  Needed because gRPC binds with SO_REUSEPORT: a second tf rpc server on the
  port of a running one starts without any error and the kernel splits
  connections between the two; and a server whose bind fails only logs
  "Failed to add port to server". A plain bind (SO_REUSEADDR, so that old
  TIME_WAIT connections do not count) fails on a port that anyone listens on.
  """
  bind_host = host.strip('[]')
  try:
    infos = socket.getaddrinfo(bind_host, port, type=socket.SOCK_STREAM)
  except socket.gaierror as e:
    raise OSError(f'Cannot resolve learner host {host!r}: {e}') from e
  for family, socktype, proto, _, sockaddr in infos:
    with socket.socket(family, socktype, proto) as s:
      s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
      try:
        s.bind(sockaddr)
      except OSError as e:
        if e.errno == errno.EADDRINUSE:
          raise OSError(
              errno.EADDRINUSE,
              f'{host}:{port} is already in use (another learner still '
              f'running?); pick another port or use port 0') from e
        # EADDRNOTAVAIL and co. (e.g. no IPv6 on this machine): gRPC skips
        # such addresses as well.
