"""The one scheduling core: candidate clusters -> filters -> scorers -> select -> allocate.

The simulator, the planner's checks and the live server all place work through `Engine`.
"""
