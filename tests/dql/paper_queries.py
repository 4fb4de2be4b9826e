"""The four example queries of the ModelHub paper (ICDE 2017, Sec. III-B2), verbatim."""

Q1 = """select m1
where
  m1.name like "alexnet_%" and
  m1.creation_time > "2015-11-22" and
  m1["conv[1,3,5]"].next has POOL("MAX")"""

Q2 = """slice m2 from m1
where m1.name like "alexnet-origin%"
mutate m2.input = m1["conv1"] and
       m2.output = m1["fc7"]"""

Q3 = """construct m2 from m1
where
  m1.name like "alexnet-avgv1%" and
  m1["conv*($1)"].next has POOL("AVG")
mutate m1["conv*($1)"].insert = RELU("relu$1")"""

Q4 = """evaluate m
from "query3"
with config = "path to config"
vary config.base_lr in [0.1, 0.01, 0.001] and
     config.net["conv*"].lr auto and
     config.input_data in ["path1", "path2"]
keep top(5, m["loss"], 100)"""

PAPER_QUERIES = {"query1": Q1, "query2": Q2, "query3": Q3, "query4": Q4}
