<?php
// The notes app's functions: storage paths, users, notes and files. Data
// lives in the storage berth mounts over data/ (berth.yml storage), shared
// by every release and both slots; PHP sessions live in sessions/.
declare(strict_types=1);

require __DIR__ . '/version.php';
require __DIR__ . '/marker.php';

const DATA_DIR = __DIR__ . '/../data';

/** @return array<string, array{0: string, 1: string}> */
function users(): array
{
    return require __DIR__ . '/../config/users.php';
}

function signed_in(): ?string
{
    $user = $_SESSION['user'] ?? null;
    return is_string($user) && isset(users()[$user]) ? $user : null;
}

function notes_file(string $user): string
{
    return DATA_DIR . '/notes-' . $user . '.txt';
}

function uploads_dir(string $user): string
{
    return DATA_DIR . '/uploads/' . $user;
}

/** A note is one line of text; false when storage refuses the write. */
function add_note(string $user, string $text): bool
{
    $line = str_replace(["\r", "\n"], ' ', trim($text));
    if ($line === '' || strlen($line) > 500) {
        return false;
    }
    return file_put_contents(notes_file($user), $line . "\n", FILE_APPEND | LOCK_EX) !== false;
}

/** @return list<string> */
function notes(string $user): array
{
    $lines = @file(notes_file($user), FILE_IGNORE_NEW_LINES);
    return $lines === false ? [] : $lines;
}

/** A file name a user may give an upload: no path, no dotfile. */
function valid_file_name(string $name): bool
{
    return preg_match('/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/', $name) === 1;
}

/** @return list<string> */
function files(string $user): array
{
    $names = @scandir(uploads_dir($user));
    if ($names === false) {
        return [];
    }
    return array_values(array_filter($names, 'valid_file_name'));
}

/**
 * Stores an upload. Returns null, or why it failed. A write past the
 * storage quota fails here ("No space left on device"): what was written
 * of it is removed, so a full disk never leaves a torn file.
 */
function store_upload(string $user, array $upload): ?string
{
    if (($upload['error'] ?? UPLOAD_ERR_NO_FILE) !== UPLOAD_ERR_OK || !is_uploaded_file($upload['tmp_name'])) {
        return 'the upload failed (error ' . (int) ($upload['error'] ?? -1) . ')';
    }
    $name = (string) $upload['name'];
    if (!valid_file_name($name)) {
        return 'use a file name of letters, digits and . _ -';
    }
    $dir = uploads_dir($user);
    if (!is_dir($dir) && !@mkdir($dir, 0770, true)) {
        return 'storage is full';
    }
    $target = $dir . '/' . $name;
    $partial = $dir . '/.partial-' . bin2hex(random_bytes(6));
    if (!@copy($upload['tmp_name'], $partial) || filesize($partial) !== filesize($upload['tmp_name'])) {
        @unlink($partial);
        return 'storage is full';
    }
    rename($partial, $target);
    return null;
}

/** The address the client used, for redirects: host, port and scheme. */
function url(string $path): string
{
    $scheme = ($_SERVER['HTTPS'] ?? '') === 'on' ? 'https' : 'http';
    return $scheme . '://' . $_SERVER['HTTP_HOST'] . $path;
}

function redirect(string $path): never
{
    header('Location: ' . url($path), true, 303);
    exit;
}

function e(string $text): string
{
    return htmlspecialchars($text, ENT_QUOTES);
}

/** A whole page around $body (HTML). */
function page(string $title, string $body, int $status = 200): never
{
    http_response_code($status);
    header('Content-Type: text/html; charset=utf-8');
    header('Cache-Control: no-store');
    $version = e(NOTES_VERSION);
    $marker = e(NOTES_MARKER);
    echo <<<HTML
    <!doctype html>
    <html lang="en">
    <head><meta charset="utf-8"><title>{$title} · notes</title>
    <link rel="stylesheet" href="/assets/style.css"></head>
    <body>
    <h1>{$title}</h1>
    {$body}
    <footer>notes <span id="version">{$version}</span> marker <span id="marker">{$marker}</span></footer>
    </body>
    </html>

    HTML;
    exit;
}
