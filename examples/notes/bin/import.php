<?php
// A command-line script (never served: berth.yml web.deny): imports notes
// from a text file, one per line.
if (PHP_SAPI !== 'cli') {
    exit("command line only\n");
}
require __DIR__ . '/../lib/app.php';
[$_, $user, $file] = $argv + [null, null, null];
foreach (file($file, FILE_IGNORE_NEW_LINES) as $line) {
    add_note((string) $user, $line);
}
