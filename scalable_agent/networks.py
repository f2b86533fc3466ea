"""The IMPALA agent in Sonnet 2 (being written)."""
import zlib

import numpy as np

# Instructions (DMLab's INSTR text) reach the agent as word ids: each
# whitespace-separated, lower-cased word hashed into NUM_INSTRUCTION_BUCKETS
# buckets, padded with -1 to MAX_INSTRUCTION_WORDS (longer texts are cut).
NUM_INSTRUCTION_BUCKETS = 1000
MAX_INSTRUCTION_WORDS = 16


def hash_instruction(text):
  """Text -> int32 [MAX_INSTRUCTION_WORDS] word ids, -1 where there is no word.

  crc32 is used (not Python's salted `hash`) so that ids agree across
  processes and machines.
  """
  ids = np.full([MAX_INSTRUCTION_WORDS], -1, np.int32)
  words = text.lower().split()[:MAX_INSTRUCTION_WORDS]
  for i, word in enumerate(words):
    ids[i] = zlib.crc32(word.encode('utf-8')) % NUM_INSTRUCTION_BUCKETS
  return ids
