from django.contrib.auth import get_user_model
from django.urls import reverse

from training.services.datasets import dataset_build


def test_datasets_are_readable_but_not_editable_in_the_admin(client, import_corpus):
    import_corpus(2)
    dataset, _ = dataset_build(task="token_classification")
    client.force_login(get_user_model().objects.create_superuser("root", "r@x.org", "pw-123456789"))
    assert client.get(reverse("admin:training_dataset_changelist")).status_code == 200
    page = client.get(reverse("admin:training_dataset_change", args=[dataset.pk]))
    assert page.status_code == 200 and dataset.sha256 in page.content.decode()
    assert client.post(reverse("admin:training_dataset_change", args=[dataset.pk]), {"name": "x"}).status_code == 403
    assert client.get(reverse("admin:training_dataset_delete", args=[dataset.pk])).status_code == 403
