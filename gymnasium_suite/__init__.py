"""Plain gymnasium tasks with discrete actions (CartPole-v1 and friends).

The suite object is `gymnasium_suite.suite.SUITE`.
"""
