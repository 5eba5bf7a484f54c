"""Applications built on the library and the trainers: `lrt-bench bench`, `leaderboard`, `redundancy`,
`router-sweep`, `demo`, and FINDINGS.md.
"""
