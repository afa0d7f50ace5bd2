"""Experiment, not product: SetFit proper, fine-tuning the transformer itself inside each fold.

`PYTHONPATH=. python scripts/setfit_experiment.py SET STEPS LR` (e.g. `summary_style 40 2e-5`; from the
project root, HF_HUB_OFFLINE=1): for each of knowledge_eval's 5 folds, all-MiniLM-L6-v2 is tuned on
the other folds' incidents (STEPS batches of 16 anchors, each with a random incident of its cause;
the in-batch softmax of cosines x 20 with every same-cause incident a positive, AdamW at LR), every
document, query and label name is embedded again with it (passage vectors cached by content hash in
/tmp/setfit_experiment.sqlite3 under a name of their own, never the product's cache), and the held-out
fold is ranked as `knowledge_eval` does (hybrid, weights learned from the other folds). Prints top-1
and top-3. About a minute a fold for 120 summaries on 2 cores at 40 steps. README, Knowledge.
"""
import copy
import os
import random
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apps.settings"); os.environ["HF_HUB_OFFLINE"] = "1"
import django; django.setup()
from pathlib import Path
import numpy as np, torch
from apps.incidents.importer import read_history
from apps.knowledge.evaluation import _training_labels, prepare
from apps.knowledge.embedding import embed_documents, EmbeddingCache, get_encoder
from apps.knowledge.fusion import assign_folds, Example, held_out_evidence, fit_weights
from apps.knowledge.index import KnowledgeIndex, doc_id
from apps.knowledge.ranking import allowed_mask, category_prototypes, category_history, rank, score_categories, default_fusion_weights
from apps.incidents.taxonomy import DEFAULT_CATEGORIES
torch.set_num_threads(2)
name = sys.argv[1]; steps = int(sys.argv[2]); lr = float(sys.argv[3])
rows, _ = read_history(Path(f"fixtures/incidents/{name}.jsonl"))
stock = prepare(rows)
labels = stock.labels; n = len(labels)
fold_of = assign_folds(labels, 5, 13)
base = get_encoder()
state = copy.deepcopy(base.model.state_dict())
names = {slug: nm for slug, nm, _ in DEFAULT_CATEGORIES}
for r, l in zip(rows, labels): names.setdefault(l, r.category_label.strip())
cache = EmbeddingCache(Path("/tmp/setfit_experiment.sqlite3"))
class Tuned:
    dimension = 384
    def __init__(self, model, tag): self.model, self.name = model, tag
    def encode(self, texts):
        with torch.no_grad():
            v = self.model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(v, dtype=np.float32)
top1 = top3 = 0; t0 = time.time()
for fold in range(5):
    model = base.model; model.load_state_dict(state)
    held = {i for i in range(n) if fold_of[i] == fold}; train = [i for i in range(n) if i not in held]
    by = {}
    for i in train: by.setdefault(labels[i], []).append(i)
    rng = random.Random(fold)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for step in range(steps):
        anchors = rng.sample(train, 16)
        # one positive per anchor of a distinct cause where possible (MNRL: the batch's others are negatives)
        a = [stock.index.docs[i].text for i in anchors]
        p = [stock.index.docs[rng.choice([j for j in by[labels[i]] if j != i] or [i])].text for i in anchors]
        fa = model.tokenize(a); fp = model.tokenize(p)
        za = torch.nn.functional.normalize(model(fa)["sentence_embedding"], dim=1)
        zp = torch.nn.functional.normalize(model(fp)["sentence_embedding"], dim=1)
        y = torch.tensor([[labels[i] == labels[j] for j in anchors] for i in anchors])
        logits = 20 * za @ zp.T
        logp = torch.log_softmax(logits, dim=1)
        loss = -(logp.masked_fill(~y, 0).sum(1) / y.sum(1)).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    model.eval()
    enc = Tuned(model, f"setfit-{name}-{fold}-{steps}-{lr}-{time.time()}")
    docs = stock.index.docs
    vectors = embed_documents([d.text for d in docs], encoder=enc, cache=cache)
    qv = embed_documents(stock.queries, encoder=enc, cache=cache)
    slugs = sorted(set(labels)); lv = dict(zip(slugs, embed_documents([names[s] for s in slugs], encoder=enc, cache=cache)))
    index = KnowledgeIndex(None); index.upsert(docs, vectors)
    held_ids = frozenset(doc_id("incident", i + 1) for i in held)
    allowed = allowed_mask(index, excluded_ids=held_ids)
    cands = _training_labels(index, allowed)
    protos = category_prototypes(index, allowed); hist = category_history(index, allowed)
    ex = [Example(doc_id("incident", i + 1), labels[i], stock.queries[i], qv[i]) for i in train]
    ev = held_out_evidence(index, ex, mode="hybrid", excluded_ids=held_ids, candidates_for=lambda a: _training_labels(index, a), label_vectors=lv)
    fusion = fit_weights(ev, prior=default_fusion_weights())
    for i in held:
        ranked = rank(index, stock.queries[i], qv[i], mode="hybrid", allowed=allowed)
        sc = score_categories(index, ranked, qv[i], cands, prototypes=protos, history=hist, label_vectors=lv, fusion=fusion)
        order = [s.category for s in sc]
        top1 += order[:1] == [labels[i]]; top3 += labels[i] in order[:3]
    print(f"fold {fold} done {time.time()-t0:.0f}s running top1 {top1} top3 {top3}", flush=True)
print(f"{name} setfit steps={steps} lr={lr}: top1 {top1/n:.3f} top3 {top3/n:.3f} ({time.time()-t0:.0f}s)")
