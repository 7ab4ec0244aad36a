#!/usr/bin/env python3
"""Writes a miniature data folder for the reproduce integration test: two small corpora, a
four-label CSV task whose labels depend on topic words that the first corpus also uses, and a
two-label task in one file (no test file: its test sample is drawn from it) whose every text is
also a document of the second corpus, so cleaning must remove exactly its test draw."""
import os
import random
import sys

out = sys.argv[1]
rng = random.Random(7)
topics = {
    "animals": "cat dog horse cow sheep goat bird fish mouse lion".split(),
    "food": "bread milk cheese apple rice soup meat egg salt honey".split(),
    "tools": "hammer saw nail drill screw knife rope axe spade wrench".split(),
    "weather": "rain snow wind storm cloud sun fog frost hail thunder".split(),
}
common = "the a of and to in is was with for on by at from".split()
other = "king prophet lord servant temple river mountain city gold silver".split()


def sentence(words, n):
    return " ".join(rng.choice(words + common) for _ in range(n))


os.makedirs(os.path.join(out, "corpora"), exist_ok=True)
os.makedirs(os.path.join(out, "task"), exist_ok=True)
with open(os.path.join(out, "corpora", "near.txt"), "w") as f:
    for _ in range(1500):
        words = rng.choice(list(topics.values()))
        f.write(sentence(words, rng.randint(8, 20)) + "\n")
with open(os.path.join(out, "corpora", "far.txt"), "w") as f:
    for _ in range(1500):
        f.write(sentence(other, rng.randint(8, 20)) + "\n")
labels = sorted(topics)
with open(os.path.join(out, "task", "classes.txt"), "w") as f:
    f.write("\n".join(labels) + "\n")
for split, n in (("train", 40), ("test", 20)):
    with open(os.path.join(out, "task", split + ".csv"), "w") as f:
        for i in range(n):
            for k, name in enumerate(labels):
                f.write('"%d","%s"\n' % (k + 1, sentence(topics[name], rng.randint(4, 10))))
os.makedirs(os.path.join(out, "onefile"), exist_ok=True)
with open(os.path.join(out, "onefile", "classes.txt"), "w") as f:
    f.write("even\nodd\n")
with open(os.path.join(out, "onefile", "all.csv"), "w") as f, open(os.path.join(out, "corpora", "far.txt"), "a") as far:
    for i in range(16):
        text = "onefile entry number %d tells %s" % (i, sentence(other, 5))
        f.write('"%d","%s"\n' % (1 + i % 2, text))
        far.write(text + "\n")
