<?php
// The front controller: nginx sends every request for a file that does not
// exist here (berth.yml web.front_controller), so URLs carry no ".php".
declare(strict_types=1);

require __DIR__ . '/lib/app.php';

$method = $_SERVER['REQUEST_METHOD'];
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH) ?: '/';

if ($path === '/health') {
    // Ready only when the storage is mounted and writable: berth does not
    // switch to a release that answers anything else.
    header('Content-Type: text/plain');
    header('Cache-Control: no-store');
    $ok = is_writable(DATA_DIR) && is_writable(session_save_path());
    http_response_code($ok ? 200 : 503);
    echo $ok ? "notes: ok\n" : "notes: storage is missing\n";
    exit;
}

session_start();
$user = signed_in();

if ($path === '/login' && $method === 'POST') {
    $name = (string) ($_POST['user'] ?? '');
    $known = users()[$name] ?? null;
    if ($known === null || !password_verify((string) ($_POST['password'] ?? ''), $known[0])) {
        page('Sign in', '<p class="error">Wrong name or password.</p>' . login_form(), 403);
    }
    session_regenerate_id(true);
    $_SESSION['user'] = $name;
    redirect('/');
}

if ($path === '/logout' && $method === 'POST') {
    $_SESSION = [];
    session_destroy();
    redirect('/');
}

if ($user === null) {
    page('Sign in', login_form(), $path === '/' ? 200 : 403);
}

if ($path === '/notes' && $method === 'POST') {
    if (!add_note($user, (string) ($_POST['text'] ?? ''))) {
        page('Not saved', '<p class="error">The note was empty, too long, or storage is full.</p>', 507);
    }
    redirect('/');
}

if ($path === '/upload' && $method === 'POST') {
    $error = store_upload($user, $_FILES['file'] ?? []);
    if ($error !== null) {
        page('Not saved', '<p class="error">' . e($error) . '.</p>', $error === 'storage is full' ? 507 : 400);
    }
    redirect('/');
}

if ($path === '/delete' && $method === 'POST') {
    $name = (string) ($_POST['name'] ?? '');
    if (valid_file_name($name)) {
        @unlink(uploads_dir($user) . '/' . $name);
    }
    redirect('/');
}

if (preg_match('#^/files/([^/]+)$#', $path, $m) === 1 && $method === 'GET') {
    // Storage is never served by nginx: files go out through PHP, after
    // this access check.
    $name = rawurldecode($m[1]);
    $file = uploads_dir($user) . '/' . $name;
    if (!valid_file_name($name) || !is_file($file)) {
        page('Not found', '<p>No such file.</p>', 404);
    }
    header('Content-Type: application/octet-stream');
    header('Content-Disposition: attachment; filename="' . $name . '"');
    header('X-Content-Type-Options: nosniff');
    header('Content-Length: ' . filesize($file));
    readfile($file);
    exit;
}

if ($path === '/mail' && $method === 'POST') {
    // mail() exists only when the platform turned mail on (app.yml mail).
    if (!function_exists('mail')) {
        page('Mail', '<p class="error">Mail is not enabled for this app.</p>', 503);
    }
    $to = users()[$user][1];
    $body = "Your notes:\n\n" . implode("\n", notes($user)) . "\n";
    $sent = mail($to, 'Your notes', $body);
    page('Mail', $sent ? '<p class="notice">Sent to ' . e($to) . '.</p>' : '<p class="error">Not sent.</p>', $sent ? 200 : 502);
}

if ($path !== '/') {
    page('Not found', '<p>No such page.</p>', 404);
}

$who = e($user);
$items = implode('', array_map(fn ($n) => '<li>' . e($n) . '</li>', notes($user)));
$links = implode('', array_map(
    fn ($f) => '<li><a href="/files/' . rawurlencode($f) . '">' . e($f) . '</a></li>',
    files($user)
));
page('Notes of ' . $who, <<<HTML
<p id="user">signed in as {$who}</p>
<form method="post" action="/logout"><button>Sign out</button></form>
<h2>Notes</h2>
<ul class="notes">{$items}</ul>
<form method="post" action="/notes"><label>New note <input type="text" name="text" maxlength="500"></label><button>Save</button></form>
<h2>Files</h2>
<ul class="files">{$links}</ul>
<form method="post" action="/upload" enctype="multipart/form-data"><label>File (up to 2 MB) <input type="file" name="file"></label><button>Upload</button></form>
<form method="post" action="/mail"><button>Mail me my notes</button></form>
HTML);

function login_form(): string
{
    return <<<HTML
    <form method="post" action="/login">
    <label>Name <input type="text" name="user"></label>
    <label>Password <input type="password" name="password"></label>
    <button>Sign in</button>
    </form>
    HTML;
}
