"""Data tools: the synthetic span generator (`taxi-pipeline generate`) and the script that cut the shipped spans."""
