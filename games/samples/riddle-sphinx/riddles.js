/* Riddles to fall back on when the model does not answer in the expected format. */
window.BUILTIN_RIDDLES = [
  { riddle: "What walks on four legs in the morning, two legs at noon, and three legs in the evening?", answers: ["man", "a man", "human", "a human", "person", "people"], hint: "You are one." },
  { riddle: "The more of me you take, the more you leave behind. What am I?", answers: ["footsteps", "steps", "footprints"], hint: "Walk and look back." },
  { riddle: "I have cities but no houses, forests but no trees, and water but no fish. What am I?", answers: ["map", "a map"], hint: "Travellers unfold me." },
  { riddle: "What has keys but can open no locks?", answers: ["piano", "a piano", "keyboard", "a keyboard"], hint: "It makes music." },
  { riddle: "I speak without a mouth and hear without ears. I have no body, but I come alive with the wind. What am I?", answers: ["echo", "an echo"], hint: "Shout into a canyon." },
  { riddle: "What can run but never walks, has a mouth but never talks, has a bed but never sleeps?", answers: ["river", "a river"], hint: "It flows to the sea." },
  { riddle: "The more you have of it, the less you see. What is it?", answers: ["darkness", "dark", "the dark"], hint: "Blow out the candle." },
  { riddle: "What has to be broken before you can use it?", answers: ["egg", "an egg"], hint: "Breakfast." },
  { riddle: "I am always hungry and must always be fed. The finger I touch will soon turn red. What am I?", answers: ["fire", "a fire", "flame"], hint: "It warms the camp." },
  { riddle: "What comes once in a minute, twice in a moment, but never in a thousand years?", answers: ["m", "the letter m", "letter m"], hint: "Look at the words, not the time." },
  { riddle: "What has a neck but no head, and wears a cap?", answers: ["bottle", "a bottle"], hint: "Pour from it." },
  { riddle: "I shave every day, but my beard stays the same. Who am I?", answers: ["barber", "a barber"], hint: "A trade." },
];
