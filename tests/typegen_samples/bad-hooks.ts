// Hooks that do not match the site's declarations: every marked line is a tsc error.

const plugin: Plugin = {
  noteSaved(note: string) { // tsc-error: the declared argument is a note object
    return note.length;
  },
  headline(value) { // tsc-error: so it returns a number, not the string a filter must return
    return value * 2; // tsc-error: the filtered value is a string
  },
  scoreOf(noteId) {
    return noteId.toUpperCase(); // tsc-error: noteId is a number
  },
};
