"""The whole local stack in one process tree: `weavenn up` and `weavenn status`.

`plan` decides which processes run (the API, the watcher with its relay, every registered
consumer), `supervisor` starts them as child processes and keeps them running, `state` is
the file through which another terminal sees them, `probe` reads what the stack has done
(notes indexed, events pending, last commit), and `demo` fills an empty vault.
"""
