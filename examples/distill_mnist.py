"""The MNIST demo in Python: train a teacher (cached), distill it into a 10x cheaper student."""

import edgekd as ek

ek.seed_everything(0)  # same initial teacher weights -> the trained teacher is reused from the cache

data = ek.data.mnist()
teacher = ek.pretrain(ek.models.get("mnist-resnet"), data, ek.TrainConfig(epochs=4, lr=3e-3)).model
student = ek.models.get("mnist-mobilenet")
pipe = ek.Pipeline(
    teacher=teacher,
    student=student,
    data=data,
    stages=[ek.Distill(epochs=8, lr=5e-3, temperature=4.0, alpha=0.5, features={"blocks.3": "layer2"})],
    out_dir="runs/mnist-python",
)
result = pipe.run()
print(result.report["ledger"][-1]["test_accuracy"])
