"""Built-in datasets: one small `DatasetSpec` each, looked up by name.

A spec says what the dataset is (task, label names or entity types in id order), where it
comes from on the Hugging Face hub, and anything unusual about its splits. Loading logic is
shared (see `loading.py`); adding a dataset is adding an entry here.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HubSource:
    """One hub copy of a dataset and how its columns map onto ours.

    Attributes:
        path: hub id passed to `datasets.load_dataset`.
        config: its configuration name, if any.
        text_columns: seq: text field(s), joined with a space; token: the token-list field.
        label_column: seq: the label field; token: the tag-list field.
        label_names: names of integer labels in id order when the column is a plain integer
            rather than a `ClassLabel` (whose own names are used otherwise).
    """

    path: str
    config: str | None = None
    text_columns: tuple[str, ...] = ("text",)
    label_column: str = "label"
    label_names: tuple[str, ...] | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A built-in dataset.

    Attributes:
        name: what `--data` accepts; also the folder name under `--data-dir`.
        task: "seq" or "token".
        labels: seq: class names in id order; token: entity types in id order (the BIO list is
            "O", then B-/I- of each type); regression: the score's name (its label column).
        hub: hub copies tried in order when the data dir does not hold the dataset; empty for a
            dataset read only from its `--data-dir` folder (its error then says so).
        description: one line for `--help` and docs.
        resource: folder under `lsllm/resources` shipped with the package (always offline).
        carve_size: size of the validation slice carved from train when the dataset has no
            usable validation split (default: the official validation's size, else 10%).
        notes: facts added to every bundle of this dataset.
        problem: seq: "multi-label" or "regression" when the dataset is one (a conflicting
            `--problem` is an error); None: as the labels say (single-label).
        text_columns: the text column(s) of the data-dir files (default: text / sentence);
            several are kept apart as fields (sentence pairs).
        label_column: the label column of the data-dir files (default: label).
        label_columns: multi-label: one 0/1 column per label, in id order (== labels).
    """

    name: str
    task: str
    labels: tuple[str, ...]
    hub: tuple[HubSource, ...] = ()
    description: str = ""
    resource: str | None = None
    carve_size: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    problem: str | None = None
    text_columns: tuple[str, ...] | None = None
    label_column: str | None = None
    label_columns: tuple[str, ...] | None = None


_ONTONOTES_TYPES = (
    "PERSON", "NORP", "FAC", "ORG", "GPE", "LOC", "PRODUCT", "DATE", "TIME", "PERCENT", "MONEY",
    "QUANTITY", "ORDINAL", "CARDINAL", "EVENT", "WORK_OF_ART", "LAW", "LANGUAGE",
)  # fmt: skip
# tner/ontonotes5 stores tags as plain ints; this is its label2id (dataset card), in id order.
_TNER_ONTONOTES_TAGS = (
    "O", "B-CARDINAL", "B-DATE", "I-DATE", "B-PERSON", "I-PERSON", "B-NORP", "B-GPE", "I-GPE", "B-LAW",
    "I-LAW", "B-ORG", "I-ORG", "B-PERCENT", "I-PERCENT", "B-ORDINAL", "B-MONEY", "I-MONEY",
    "B-WORK_OF_ART", "I-WORK_OF_ART", "B-FAC", "B-TIME", "I-CARDINAL", "B-LOC", "B-QUANTITY",
    "I-QUANTITY", "I-NORP", "I-LOC", "B-PRODUCT", "I-TIME", "B-EVENT", "I-EVENT", "I-FAC",
    "B-LANGUAGE", "I-PRODUCT", "I-ORDINAL", "I-LANGUAGE",
)  # fmt: skip

_SEMEVAL_EC_EMOTIONS = (
    "anger", "anticipation", "disgust", "fear", "joy", "love", "optimism", "pessimism", "sadness", "surprise", "trust",
)  # fmt: skip

_CLINC150_INTENTS = tuple("""
accept_reservations account_blocked alarm application_status apr are_you_a_bot balance bill_balance bill_due
book_flight book_hotel calculator calendar calendar_update calories cancel cancel_reservation car_rental card_declined
carry_on change_accent change_ai_name change_language change_speed change_user_name change_volume confirm_reservation
cook_time credit_limit credit_limit_change credit_score current_location damaged_card date definition direct_deposit
directions distance do_you_have_pets exchange_rate expiration_date find_phone flight_status flip_coin food_last
freeze_account fun_fact gas gas_type goodbye greeting how_busy how_old_are_you improve_credit_score income
ingredient_substitution ingredients_list insurance insurance_change interest_rate international_fees
international_visa jump_start last_maintenance lost_luggage make_call maybe meal_suggestion meaning_of_life
measurement_conversion meeting_schedule min_payment mpg new_card next_holiday next_song no nutrition_info
oil_change_how oil_change_when order order_checks order_status pay_bill payday pin_change play_music plug_type
pto_balance pto_request pto_request_status pto_used recipe redeem_rewards reminder reminder_update repeat
replacement_card_duration report_fraud report_lost_card reset_settings restaurant_reservation restaurant_reviews
restaurant_suggestion rewards_balance roll_dice rollover_401k routing schedule_maintenance schedule_meeting
share_location shopping_list shopping_list_update smart_home spelling spending_history sync_device taxes tell_joke
text thank_you time timer timezone tire_change tire_pressure todo_list todo_list_update traffic transactions transfer
translate travel_alert travel_notification travel_suggestion uber update_playlist user_name vaccines w2 weather
what_are_your_hobbies what_can_i_ask_you what_is_your_name what_song where_are_you_from whisper_mode
who_do_you_work_for who_made_you yes
""".split())  # fmt: skip  (sorted, as the shared copy's labels.txt)

_SPECS = [
    DatasetSpec(
        "sst2", "seq", ("negative", "positive"),
        hub=(HubSource("glue", "sst2", ("sentence",)), HubSource("stanfordnlp/sst2", None, ("sentence",))),
        description="GLUE SST-2 binary sentiment (67,349 train; official validation reported as test)",
    ),
    DatasetSpec(
        "sst2-sample", "seq", ("negative", "positive"), resource="sst2-sample", carve_size=500,
        description="6,000 SST-2 training sentences + the 872 official validation ones, shipped for offline demos",
    ),
    DatasetSpec(
        "sst5", "seq", ("very negative", "negative", "neutral", "positive", "very positive"),
        hub=(HubSource("SetFit/sst5", label_names=("very negative", "negative", "neutral", "positive", "very positive")),),
        description="Stanford Sentiment Treebank, 5 classes (8,544 / 1,101 / 2,210)",
    ),
    DatasetSpec(
        "agnews", "seq", ("World", "Sports", "Business", "Sci/Tech"),
        hub=(HubSource("fancyzhx/ag_news"), HubSource("ag_news")),
        description="AG News topics (120,000 train / 7,600 test; validation carved from train)",
    ),
    DatasetSpec(
        "twitterfin", "seq", ("Bearish", "Bullish", "Neutral"),
        hub=(HubSource("zeroshot/twitter-financial-news-sentiment", label_names=("Bearish", "Bullish", "Neutral")),),
        description="Twitter Financial News sentiment (9,543 train; official validation reported as test)",
    ),
    DatasetSpec(
        "clinc150", "seq", _CLINC150_INTENTS,
        description="CLINC150 intents: 150 snake_case intents, in-scope queries (18,000 / 2,250 / 2,250: 120 / 15 / 15 "
                    "per intent, the Glean re-split); --data-dir only; --train-per-class N for few-shot",
    ),
    DatasetSpec(
        "conll03", "token", ("PER", "ORG", "LOC", "MISC"),
        hub=(HubSource("eriktks/conll2003", None, ("tokens",), "ner_tags"), HubSource("conll2003", None, ("tokens",), "ner_tags")),
        description="CoNLL-2003 English NER, BIO over PER ORG LOC MISC (14,041 / 3,250 / 3,453)",
    ),
    DatasetSpec(
        "ontonotesv5", "token", _ONTONOTES_TYPES,
        hub=(HubSource("tner/ontonotes5", None, ("tokens",), "tags", _TNER_ONTONOTES_TAGS),),
        description="OntoNotes 5.0 English NER, CoNLL-2012 v4 split, 18 types (59,924 / 8,528 / 8,262)",
    ),
    DatasetSpec(
        "wnut17", "token", ("corporation", "creative-work", "group", "location", "person", "product"),
        hub=(HubSource("leondz/wnut_17", None, ("tokens",), "ner_tags"), HubSource("wnut_17", None, ("tokens",), "ner_tags")),
        description="WNUT-17 emerging entities, 6 types (3,394 / 1,009 / 1,287)",
    ),
    DatasetSpec(
        "stsb", "seq", ("score",), problem="regression", text_columns=("sentence1", "sentence2"), label_column="score",
        description="STS Benchmark sentence-pair similarity, a score in [0, 5] (5,749 / 1,500 / 1,379); --data-dir only",
    ),
    DatasetSpec(
        "semeval2018-ec", "seq", _SEMEVAL_EC_EMOTIONS, problem="multi-label", text_columns=("Tweet",),
        label_columns=_SEMEVAL_EC_EMOTIONS,
        notes=("test is the official E-c dev set (886 tweets): the official test labels are not in the offline copy",),
        description="SemEval-2018 Task 1 E-c English tweets, 0 to 11 emotions each (6,838 train; the official dev set "
                    "of 886 as test); --data-dir only",
    ),
]  # fmt: skip

REGISTRY: dict[str, DatasetSpec] = {spec.name: spec for spec in _SPECS}
