"""General questions for self-distillation replay while fine-tuning a pretrained model.

Fine-tuning on the fictitious people moves a pretrained model's answers to unrelated questions
(without replay SmolLM2-135M answered "What is the capital of France?" with a fictitious birthplace).
The *untouched* model's own greedy answers to general questions, replayed, keep its behaviour
outside the new facts (self-distillation fine-tuning, Yang et al. 2024, "Self-Distillation Bridges
Distribution Gap in Language Model Fine-Tuning", arXiv 2402.13669). By default fine-tuning holds the
untouched model's next-token distributions along these answers (KL, `models.train.Anchors`) rather
than training on them as text, which sharpened the model towards its own wording and cost world
multiple choice (`pretrained.replay_loss`).

None of these asks for a capital, a chemical symbol or a sum: those are the evaluation's world
facts (`data.world`, `evals.multiple_choice.world_choice_questions`), and replaying them would
score the model on what it was trained to repeat.
"""

GENERAL_QUESTIONS = [
    "What is the largest planet in the solar system?",
    "How many days are there in a week?",
    "Who wrote the play Romeo and Juliet?",
    "What colour is the sky on a clear day?",
    "What is the freezing point of water in degrees Celsius?",
    "How many legs does a spider have?",
    "What is the opposite of hot?",
    "Which animal is known as the king of the jungle?",
    "What is the longest river in Africa?",
    "How many continents are there on Earth?",
    "What gas do plants absorb from the air?",
    "Who painted the Mona Lisa?",
    "What is 7 times 8?",
    "How many minutes are there in an hour?",
    "What is the tallest mountain in the world?",
    "Which ocean is the largest?",
    "What do bees make?",
    "What is the main language spoken in Brazil?",
    "How many sides does a triangle have?",
    "What is the closest star to Earth?",
    "Which planet is known as the red planet?",
    "What is 12 minus 5?",
    "In which year did the Second World War end?",
    "What is the currency of the United Kingdom?",
    "Who developed the theory of relativity?",
    "What is the hardest natural substance?",
    "How many months have 31 days?",
    "What is the boiling point of water in degrees Fahrenheit?",
    "Which organ pumps blood through the body?",
    "What is the plural of mouse?",
    "Which instrument has 88 keys?",
    "What is the square root of 81?",
]
