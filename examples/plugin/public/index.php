<?php
declare(strict_types=1);
require __DIR__ . '/../lib/version.php';
require __DIR__ . '/../lib/marker.php';

header('Content-Type: text/html; charset=utf-8');
$name = isset($_POST['name']) ? trim((string) $_POST['name']) : '';
?><!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>berth example plugin</title></head>
<body>
<h1>berth example plugin</h1>
<p>version <span id="version"><?= htmlspecialchars(PLUGIN_VERSION) ?></span>
   marker <span id="marker"><?= htmlspecialchars(PLUGIN_MARKER) ?></span></p>
<p><a href="/about.php">About</a> · <a href="/health.php">Health</a></p>
<form method="post">
  <label>Your name <input name="name" maxlength="60"></label>
  <button>Greet me</button>
</form>
<?php if ($name !== ''): ?>
<p id="greeting">Hello, <?= htmlspecialchars($name) ?>!</p>
<?php endif ?>
</body>
</html>
