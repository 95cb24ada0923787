"""A short end-to-end SK-Prefix run on the packaged SmolLM2-135M: build, train, save, load, predict.

    python examples/quickstart.py
"""

import tempfile

import torch

from sktuning import SKModel, SKTuningConfig, get_sk_model
from sktuning.sharing.zoo import load_backbone

torch.manual_seed(0)
train = [("a gorgeous, witty, seductive movie.", 1), ("the plot is a mess of clichés.", 0),
         ("an exhilarating, heartfelt triumph.", 1), ("dull, tedious and far too long.", 0),
         ("one of the year's most delightful films.", 1), ("a lifeless, boring waste of talent.", 0),
         ("sharp writing and wonderful performances.", 1), ("painfully unfunny from start to finish.", 0)]
test = ["a warm, funny and moving film.", "an incoherent and forgettable bore."]

backbone, tokenizer = load_backbone("smollm2-135m")
config = SKTuningConfig(mode="prefix", text="Classify the sentiment of this movie review as positive or negative. Review:",
                        task="sequence-classification", num_labels=2, adapter="lowrank", pooling="last",
                        label_names=["negative", "positive"])
model = get_sk_model(backbone, tokenizer, config)
model.print_trainable_parameters()

batch = tokenizer([t for t, _ in train], padding=True, return_tensors="pt", add_special_tokens=False)
labels = torch.tensor([y for _, y in train])
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
model.train()
for step in range(1, 16):
    loss = model(**batch, labels=labels).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    if step % 5 == 0:
        print(f"step {step:2d}  loss {loss.item():.4f}")

with tempfile.TemporaryDirectory() as folder:
    model.save_pretrained(folder)
    loaded = SKModel.from_pretrained(backbone, folder, tokenizer=tokenizer)
    inputs = tokenizer(test, padding=True, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        probs = loaded(**inputs).logits.softmax(-1)
    for text, p in zip(test, probs):
        print(f"{config.label_names[int(p.argmax())]:>8s} ({p.max():.2f})  {text}")
